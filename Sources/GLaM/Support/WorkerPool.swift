// A small pool of worker threads that spin for a while (200 µs) before sleeping, so that the many short
// parallel loops of a training step (hundreds per step, some of a few tens of microseconds) do not
// each wait for a sleeping thread to wake, as `DispatchQueue.concurrentPerform` does.
//
// One loop runs at a time. The caller publishes a job (its body, task count and how many workers
// may join) under a lock, bumps `published`, wakes sleeping workers, and then claims tasks itself
// like any worker. Tasks are claimed under the lock, one at a time, so a worker that arrives late
// claims nothing and never touches a finished job; the caller returns only when every task has
// completed. Which thread runs a task never changes what the task computes.

import Dispatch
import Foundation
import Synchronization

final class WorkerPool: @unchecked Sendable {
    /// The process-wide pool.
    static let shared = WorkerPool()

    /// How long a worker spins on `published` before it sleeps: longer than the serial stretches
    /// between one step's parallel loops (a decoding step's routing and attention on the calling
    /// thread, an optimizer step's set-up: tens of microseconds), so that the next loop finds it
    /// awake instead of paying a wake-up. 20,000 spins (3.5 µs on the EPYC) let the worker sleep
    /// between most of a decoding step's loops. Alternated with it, 200 µs (1,000,000 spins) gave
    /// more decoding tokens/s in 7 of 7 runs at B = 8 (+4–31%) and 7 of 8 at B = 1, and more
    /// training-step tokens/s in a slow sitting (+14–32%, 3 of 3), the same in a fast one.
    private static let spinNanoseconds: UInt64 = 200_000
    /// The most workers the pool starts (besides the calling thread).
    private static let maximumWorkers = 63

    private struct Job {
        var generation = 0
        var body: UncheckedSendable<(Int) -> Void>?
        var count = 0
        var next = 0
        var joined = 0
        var allowed = 0
    }

    private let job = Mutex(Job())
    /// Tasks of the current job that have finished, read by the waiting caller without the lock
    /// (spinning on the lock would contend with the workers claiming tasks).
    private let completed = Atomic<Int>(0)
    /// The generation of the latest job, read by spinning workers without the lock.
    private let published = Atomic<Int>(0)
    /// Set while a loop uses the pool; a second concurrent or nested loop uses Dispatch instead.
    private let inUse = Atomic<Bool>(false)
    /// Per worker: true while it sleeps (or is about to), to be woken by its semaphore.
    private let sleeping = Mutex([Bool](repeating: false, count: WorkerPool.maximumWorkers))
    private let semaphores: [DispatchSemaphore]
    private let started = Mutex(0)

    /// A pool with no worker started yet (the process uses `shared`; tests make their own).
    init() {
        semaphores = (0..<Self.maximumWorkers).map { _ in DispatchSemaphore(value: 0) }
    }

    /// The workers started so far, and how many of them sleep on their semaphore (or are about to).
    var workerCounts: (started: Int, sleeping: Int) {
        (started.withLock { $0 }, sleeping.withLock { flags in flags.filter { $0 }.count })
    }

    /// Runs `body(task)` for every task in `0..<count` on the calling thread and up to
    /// `threads − 1` pool workers. Returns false, having run nothing, when the pool is busy.
    func run(_ count: Int, threads: Int, _ body: (Int) -> Void) -> Bool {
        guard inUse.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else { return false }
        defer { inUse.store(false, ordering: .releasing) }
        let helpers = min(threads - 1, Self.maximumWorkers)
        startWorkers(upTo: helpers)
        withoutActuallyEscaping(body) { escapable in
            completed.store(0, ordering: .relaxed)  // no task of an earlier job is still counting: its caller waited for all
            let generation = job.withLock { state -> Int in
                state.generation += 1
                (state.body, state.count, state.next) = (UncheckedSendable(escapable), count, 0)
                (state.joined, state.allowed) = (0, helpers)
                return state.generation
            }
            published.store(generation, ordering: .releasing)
            let asleep = sleeping.withLock { flags in
                let asleep = flags.indices.filter { flags[$0] }
                for worker in asleep { flags[worker] = false }
                return asleep
            }
            for worker in asleep { semaphores[worker].signal() }
            work(generation: generation)
            // Wait for tasks that workers claimed to finish.
            while completed.load(ordering: .acquiring) < count {}
            job.withLock { $0.body = nil }
        }
        return true
    }

    /// Claims and runs tasks of job `generation` until none is left.
    private func work(generation: Int) {
        while true {
            var claim = job.withLock { state -> (task: Int, body: UncheckedSendable<(Int) -> Void>)? in
                guard state.generation == generation, state.next < state.count, let body = state.body else { return nil }
                state.next += 1
                return (state.next - 1, body)
            }
            guard let task = claim?.task else { return }
            claim!.body.value(task)
            claim = nil  // release the body before the caller can see the task completed
            completed.add(1, ordering: .releasing)
        }
    }

    private func startWorkers(upTo count: Int) {
        started.withLock { started in
            while started < count {
                let index = started
                let thread = Thread { [self] in self.workerLoop(index) }
                thread.stackSize = 8 << 20
                thread.name = "glam-worker-\(index)"
                thread.start()
                started += 1
            }
        }
    }

    private func workerLoop(_ index: Int) {
        var seen = 0
        while true {
            var current = published.load(ordering: .acquiring)
            var (spins, spinStart) = (0, DispatchTime.now().uptimeNanoseconds)
            while current == seen {
                spins += 1
                // The clock is read once every 1,024 spins (about 0.2 µs of them).
                if spins & 1023 == 0 && DispatchTime.now().uptimeNanoseconds - spinStart >= Self.spinNanoseconds {
                    sleeping.withLock { $0[index] = true }
                    if published.load(ordering: .acquiring) == seen {
                        semaphores[index].wait()
                    } else if !sleeping.withLock({ flags in
                        defer { flags[index] = false }; return flags[index]
                    }) {
                        semaphores[index].wait()  // the caller saw the flag and signalled: consume it
                    }
                    (spins, spinStart) = (0, DispatchTime.now().uptimeNanoseconds)
                }
                current = published.load(ordering: .acquiring)
            }
            seen = current
            let joins = job.withLock { state -> Bool in
                guard state.generation == current, state.joined < state.allowed else { return false }
                state.joined += 1
                return true
            }
            if joins { work(generation: current) }
        }
    }
}
