// The worker pool behind `Parallelism`: every task runs exactly once, and idle workers go to sleep
// after their short spin instead of burning a core while no loop runs.

import Dispatch
import Foundation
import Synchronization
import Testing

@testable import GLaM

struct WorkerPoolTests {
    /// How often each task of `count` ran in one `pool.run`.
    static func runCounts(_ pool: WorkerPool, count: Int, threads: Int) -> (ran: Bool, counts: [Int]) {
        let counts = Mutex([Int](repeating: 0, count: count))
        let ran = pool.run(count, threads: threads) { task in counts.withLock { $0[task] += 1 } }
        return (ran, counts.withLock { $0 })
    }

    /// Waits up to `seconds` for `condition`, polling.
    static func eventually(within seconds: Double, _ condition: () -> Bool) -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(seconds * 1e9)
        while DispatchTime.now().uptimeNanoseconds < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }

    @Test("each task runs exactly once; idle workers fall asleep after their spin and wake for the next loop")
    func idleWorkersSleep() {
        let pool = WorkerPool()
        for round in 0..<3 {
            let (ran, counts) = Self.runCounts(pool, count: 257, threads: 3)
            #expect(ran && counts == Array(repeating: 1, count: 257), "round \(round)")
            #expect(pool.workerCounts.started == 2)
            // Spinning is meant to last 200 µs; a worker still awake a second after
            // the loop ended is burning a core for nothing.
            #expect(Self.eventually(within: 2) { pool.workerCounts.sleeping == 2 }, "round \(round): \(pool.workerCounts)")
        }
    }

    @Test("a loop on T threads gets T − 1 workers beside its caller, up to 64 threads in all, and every task runs once")
    func workersPerThreadCount() {
        let pool = WorkerPool()
        for (threads, started) in [(2, 1), (5, 4), (64, 63), (100, 63)] {
            let (ran, counts) = Self.runCounts(pool, count: 500, threads: threads)
            #expect(ran && counts == Array(repeating: 1, count: 500), "\(threads) threads")
            #expect(pool.workerCounts.started == started, "\(threads) threads: \(pool.workerCounts)")
        }
    }

    @Test("a loop started while the pool is busy is refused, so that the caller runs it another way")
    func busyPoolRefuses() {
        let pool = WorkerPool()
        let nested = Mutex<[Bool]>([])
        let (ran, counts) = Self.runCounts(pool, count: 1, threads: 2)
        #expect(ran && counts == [1])
        _ = pool.run(4, threads: 2) { _ in
            let inner = pool.run(1, threads: 2) { _ in }
            nested.withLock { $0.append(inner) }
        }
        #expect(nested.withLock { $0 } == [false, false, false, false])
    }
}
