// Numbers as the command line prints them: durations (train's and compare's progress lines) and
// counts with a unit (params' table). One rule each, so every command reads the same way.

import Foundation

enum Formats {
    /// `seconds` rounded to whole seconds: "42s" under a minute, "3m07s" under an hour, "2h05m"
    /// (minutes, truncated) from an hour; "?" when not finite. Every field after the first is two
    /// digits below 60.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0, seconds < 1e15 else { return "?" }
        let s = Int(seconds.rounded())
        if s >= 3600 { return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60) }
        if s >= 60 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return "\(s)s"
    }

    /// `n` with the largest unit (K = 10³, M = 10⁶, B = 10⁹, T = 10¹²) that leaves a mantissa of at
    /// least 1 after rounding: 1234567 → "1.23M", 3 significant digits (4 for billions, as the paper
    /// prints 1.879B). Below 1000 the integer itself.
    static func count(_ n: Int) -> String {
        let units: [(scale: Double, suffix: String, digits: Int)] = [(1e12, "T", 3), (1e9, "B", 4), (1e6, "M", 3), (1e3, "K", 3)]
        let x = Double(n.magnitude)
        let sign = n < 0 ? "-" : ""
        for (index, unit) in units.enumerated() where x >= unit.scale {
            let mantissa = rounded(x / unit.scale, significantDigits: unit.digits)
            // 999,999 rounds to 1000K: written in the next unit up (1M), unless this is the largest.
            if mantissa >= 1000, index > 0 {
                let up = units[index - 1]
                return sign + String(format: "%.\(up.digits)g", rounded(x / up.scale, significantDigits: up.digits)) + up.suffix
            }
            return sign + String(format: mantissa >= 1000 ? "%.0f" : "%.\(unit.digits)g", mantissa) + unit.suffix
        }
        return "\(n)"
    }

    /// `x` rounded to `digits` significant digits.
    private static func rounded(_ x: Double, significantDigits digits: Int) -> Double {
        guard x > 0 else { return x }
        let scale = pow(10, Double(digits) - 1 - floor(log10(x)))
        return (x * scale).rounded() / scale
    }
}
