// What the four benchmarks share: their options parsed alike, one timing loop (a warm-up run, then
// a fixed count or until a minimum time), runs alternated between settings so that a noisy
// neighbour slows them alike, and number formatting.

import GLaM

/// One `glam bench` benchmark: a subcommand of `glam bench` with its own options.
protocol Benchmark {
    /// The word after `glam bench`.
    static var name: String { get }
    /// The one-line usage.
    static var usage: String { get }
    /// The full `--help` text.
    static var help: String { get }
    /// Runs with the arguments after `glam bench <name>`; returns the exit status.
    static func run(_ arguments: [String], output: inout Output) throws -> Int32
}

/// The shared parts of the benchmarks.
enum Benchmarking {
    /// `arguments` parsed with the benchmark's own `options` and `flags` (and `--json`): an option
    /// of another benchmark, or a positional argument, is refused.
    static func arguments(_ arguments: [String], benchmark: String, options: Set<String>, flags: Set<String> = []) throws -> Arguments {
        let parsed = try Arguments(arguments, command: "bench \(benchmark)", options: options, flags: flags.union(["json"]))
        if let extra = parsed.positionals.first {
            throw UsageError("bench \(benchmark): unexpected argument '\(extra)'")
        }
        return parsed
    }

    /// Runs `once` once to warm up, then `repeats` times, or (without `repeats`) until at least
    /// `minimumSeconds` and 3 runs, at most `maximumRuns`; returns each timed run's seconds.
    static func timings(repeats: Int?, minimumSeconds: Double, maximumRuns: Int, _ once: () throws -> Double) rethrows -> [Double] {
        _ = try once()
        var seconds: [Double] = []
        while true {
            seconds.append(try once())
            if let repeats {
                if seconds.count >= repeats { break }
            } else if (seconds.reduce(0, +) >= minimumSeconds && seconds.count >= 3) || seconds.count >= maximumRuns {
                break
            }
        }
        return seconds
    }

    /// Times `once` on one thread and on `threads` in turn, `rounds` times after one warm-up run
    /// each, and returns the seconds of each, by name. Leaves `Parallelism.threadCount` at `threads`.
    static func alternate(oneThreadAnd threads: Int, rounds: Int, _ once: () throws -> Double) rethrows -> (
        oneThread: [Double], threads: [Double]
    ) {
        let counts = [1, threads]
        let seconds = try alternate(count: counts.count, rounds: rounds) { index in
            Parallelism.threadCount = counts[index]
            return try once()
        }
        return (oneThread: seconds[0], threads: seconds[1])
    }

    /// Runs `once(0)`, `once(1)`, … `once(count − 1)` in turn, `rounds` times after one warm-up
    /// round, and returns each one's seconds.
    static func alternate(count: Int, rounds: Int, _ once: (Int) throws -> Double) rethrows -> [[Double]] {
        var seconds = [[Double]](repeating: [], count: count)
        for round in 0...rounds {
            for index in 0..<count {
                let time = try once(index)
                if round > 0 { seconds[index].append(time) }
            }
        }
        return seconds
    }

    /// The smallest and the median of `values` (the upper median for an even count: the value with as
    /// many below it as at or above it), for timings and ratios; `values` must not be empty.
    static func minimumAndMedian(_ values: [Double]) -> (minimum: Double, median: Double) {
        precondition(!values.isEmpty, "no timings")
        let sorted = values.sorted()
        return (sorted[0], sorted[sorted.count / 2])
    }

    static func rounded(_ x: Double) -> Double { (x * 10).rounded() / 10 }

    static func pad(_ value: some CustomStringConvertible, _ width: Int) -> String {
        let text = value.description
        return String(repeating: " ", count: max(0, width - text.count)) + text
    }
}
