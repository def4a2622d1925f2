// What memory delivers, timed for the benchmarks' bounds: reads of data in the caches and of data
// pushed out of them, and writes (the "The glam command line" article, `bench decode` and
// `bench model --experts`).

import Dispatch
import Foundation
import GLaM
import Synchronization

/// Timed reads and writes of Float buffers, split evenly over the worker threads.
enum MemoryTraffic {
    /// Twice the last-level cache (Linux: the highest `cache/index*/` of CPU 0), and at least 64 MiB:
    /// reading this much other data pushes what was read before out of every cache.
    static func evictionBytes() -> Int {
        var largest = 0
        for index in 0..<8 {
            let directory = "/sys/devices/system/cpu/cpu0/cache/index\(index)/"
            guard let text = try? String(contentsOfFile: directory + "size", encoding: .utf8) else { continue }
            largest = max(largest, cacheSize(text) ?? 0)
        }
        return max(2 * largest, 64 << 20)
    }

    /// A sysfs cache size (`32768K`, `2M`, `512`) in bytes, or nil.
    static func cacheSize(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
        let units: [Character: Int] = ["K": 1 << 10, "M": 1 << 20, "G": 1 << 30]
        if let last = trimmed.last, let unit = units[last] {
            return Int(trimmed.dropLast()).flatMap { $0 >= 0 && $0 <= Int.max / unit ? $0 * unit : nil }
        }
        return Int(trimmed).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// The best of `passes` times to read the floats of each source in its range once, split
    /// evenly over `threads` workers, each pass following an untimed read of all of `evicting`: the
    /// rate at which a step finds data that other data has pushed out of the caches. Also the sum
    /// of every pass's reads, so that the reads cannot be optimised away.
    static func coldReadSeconds(
        of sources: [(source: [Float], range: Range<Int>)], evicting: [Float], threads: Int, passes: Int = 20
    ) -> (seconds: Double, sum: Float) {
        var best = Double.infinity, total: Float = 0
        for _ in 0..<passes {
            _ = readSeconds(of: evicting, range: evicting.indices, threads: threads, passes: 1)
            var seconds = 0.0
            for (source, range) in sources where !range.isEmpty {
                let read = readSeconds(of: source, range: range, threads: threads, passes: 1)
                (seconds, total) = (seconds + read.seconds, total + read.sum)
            }
            best = min(best, seconds)
        }
        return (best, total)
    }

    /// The best of `passes` times to read the floats of `source` in `range` once, split evenly over
    /// `threads` workers (for the bandwidth bound: a step that reads each weight once can go no
    /// faster), and the sum of every pass's reads, so that the reads cannot be optimised away.
    static func readSeconds(of source: [Float], range whole: Range<Int>, threads: Int, passes: Int = 20) -> (seconds: Double, sum: Float) {
        precondition(whole.upperBound <= source.count, "readSeconds: floats \(whole) of \(source.count)")
        let floats = whole.count
        var best = Double.infinity, total: Float = 0
        let sums = Mutex([Float](repeating: 0, count: threads))
        source.withUnsafeBufferPointer { buffer in
            let base = SendablePointer(buffer.baseAddress!)
            for _ in 0..<passes {
                let start = DispatchTime.now().uptimeNanoseconds
                Parallelism.forEachTask(threads, threads: threads) { task in
                    let range = (whole.lowerBound + task * floats / threads)..<(whole.lowerBound + (task + 1) * floats / threads)
                    var (a, b, c, d) = (SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>(), SIMD16<Float>())
                    var i = range.lowerBound
                    let raw = UnsafeRawPointer(base.base)
                    while i + 64 <= range.upperBound {
                        a += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                        b += raw.loadUnaligned(fromByteOffset: i * 4 + 64, as: SIMD16<Float>.self)
                        c += raw.loadUnaligned(fromByteOffset: i * 4 + 128, as: SIMD16<Float>.self)
                        d += raw.loadUnaligned(fromByteOffset: i * 4 + 192, as: SIMD16<Float>.self)
                        i += 64
                    }
                    var sum = (a + b + c + d).sum()
                    while i < range.upperBound {
                        sum += base.base[i]
                        i += 1
                    }
                    sums.withLock { $0[task] = sum }
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
                total += sums.withLock { $0.reduce(0, +) }
            }
        }
        return (best, total)
    }

    /// The best of `passes` times to write `floats` floats of `target` once (each pass storing the
    /// pass number in every element), split evenly over `threads` workers, each pass following an
    /// untimed read of all of `evicting`: the rate at which a step writes data larger than the caches
    /// (a gradient, an updated weight).
    static func coldWriteSeconds(into target: inout [Float], evicting: [Float], threads: Int, passes: Int = 5) -> Double {
        var best = Double.infinity
        let floats = target.count
        for pass in 0..<passes {
            _ = readSeconds(of: evicting, range: evicting.indices, threads: threads, passes: 1)
            let value = SIMD16<Float>(repeating: Float(pass + 1))
            target.withUnsafeMutableBufferPointer { buffer in
                let base = SendableMutablePointer(buffer.baseAddress!)
                let start = DispatchTime.now().uptimeNanoseconds
                Parallelism.forEachTask(threads, threads: threads) { task in
                    let range = (task * floats / threads)..<((task + 1) * floats / threads)
                    let raw = UnsafeMutableRawPointer(base.base)
                    var i = range.lowerBound
                    while i + 16 <= range.upperBound {
                        raw.storeBytes(of: value, toByteOffset: i * 4, as: SIMD16<Float>.self)
                        i += 16
                    }
                    while i < range.upperBound {
                        base.base[i] = value[0]
                        i += 1
                    }
                }
                best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9)
            }
        }
        return best
    }
}
