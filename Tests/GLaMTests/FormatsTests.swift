// The command line's number formats, read back: a printed duration or count must say the value it
// was given, in the unit its doc comment promises, at every boundary.

import Foundation
import Testing

@testable import GLaMCLI

struct FormatsTests {
    /// Reads "42s", "3m07s" or "2h05m" back into seconds (minutes for the hour form), checking each
    /// field after the first is two digits below 60.
    static func seconds(_ text: String) -> (value: Int, hourForm: Bool)? {
        let fields = text.split(whereSeparator: { $0.isLetter }).map(String.init)
        let units = text.filter(\.isLetter)
        guard fields.count == units.count, let first = Int(fields[0]) else { return nil }
        for field in fields.dropFirst() where field.count != 2 || Int(field).map({ $0 >= 60 }) ?? true { return nil }
        switch units {
        case "s": return (first, false)
        case "ms": return (first * 60 + Int(fields[1])!, false)
        case "hm": return (first * 3600 + Int(fields[1])! * 60, true)
        default: return nil
        }
    }

    @Test("a duration reads back as the rounded seconds, with the largest unit that fits")
    func durationsReadBack() throws {
        for s in Array(0...7300) + [86_399, 86_400, 359_999, 360_000] {
            for offset in [-0.49, 0, 0.49] where Double(s) + offset >= 0 {
                let text = Formats.duration(Double(s) + offset)
                let read = try #require(Self.seconds(text), "\(s): \(text)")
                if s >= 3600 {
                    #expect(read.hourForm && read.value == s / 60 * 60, "\(s): \(text)")
                } else {
                    #expect(!read.hourForm && read.value == s, "\(s): \(text)")
                    #expect(text.contains("m") == (s >= 60), "\(s): \(text)")
                }
            }
        }
        for bad in [Double.nan, .infinity, -.infinity, -1] { #expect(Formats.duration(bad) == "?") }
    }

    @Test("a count reads back within its rounding, with a mantissa from 1 to below 1000 in the largest unit")
    func countsReadBack() throws {
        var values: [Int] = Array(0...1100)
        var power = 1000
        while power <= 1_000_000_000_000_000 {
            for delta in [-501, -1, 0, 1, 499, 500] { values.append(power + delta) }
            for factor in [2, 7, 37, 123, 999] { values.append(power * factor + factor) }
            power *= 10
        }
        let scales: [Character: (Double, Int)] = ["K": (1e3, 3), "M": (1e6, 3), "B": (1e9, 4), "T": (1e12, 3)]
        for n in values where n >= 0 {
            let text = Formats.count(n)
            for sign in [1, -1] where sign == 1 || n > 0 {
                #expect(Formats.count(sign * n) == (sign == 1 ? text : "-" + text))
            }
            guard let suffix = text.last, let (scale, digits) = scales[suffix] else {
                #expect(n < 1000 && text == "\(n)", "\(n): \(text)")
                continue
            }
            let mantissa = try #require(Double(text.dropLast()), "\(n): \(text)")
            #expect(mantissa >= 1 && (mantissa < 1000 || suffix == "T"), "\(n): \(text)")
            // Written with `digits` significant digits: off by at most half a unit of the last one.
            let lastDigit = pow(10, floor(log10(Double(n) / scale)) - Double(digits) + 1)
            #expect(abs(mantissa - Double(n) / scale) <= lastDigit / 2 + 1e-9 * mantissa, "\(n): \(text)")
            let next: [Character: Double] = ["K": 1e6, "M": 1e9, "B": 1e12]
            if let up = next[suffix] {
                #expect(Double(n) < up, "\(n): \(text) should use the next unit")
            }
        }
        #expect(Formats.count(999_999) == "1M" && Formats.count(1_879_000_000) == "1.879B" && Formats.count(1234) == "1.23K")
    }
}
