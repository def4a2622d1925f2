// Parallel loops over Dispatch workers, and the determinism rule every parallel loop keeps.
//
// Every parallel loop in GLaM splits its work into a list of independent tasks (tiles of a matrix,
// ranges of elements, groups, experts), and every output element is computed start to finish by
// one task, by a chain of operations whose order the shapes alone fix. How the work is cut into
// tasks may depend on the thread count (the GEMM gives each worker an even share of the rows); what
// each element's arithmetic is may not. So the result is bitwise identical for 1, 2 or 8 threads
// (tested at several thread counts): threads only decide who computes an element, and when.

import Dispatch
import Foundation
import Synchronization

/// The degree of parallelism GLaM's kernels use.
public enum Parallelism {
    private static let storedThreadCount = Atomic<Int>(0)
    /// The active CPUs, counted once (on Linux Foundation reads them from files on every call,
    /// and every product asks).
    private static let activeProcessors = ProcessInfo.processInfo.activeProcessorCount

    /// The number of worker threads GLaM's kernels use (default: the number of active CPUs).
    ///
    /// Results never depend on this value; only speed does.
    public static var threadCount: Int {
        get {
            let stored = storedThreadCount.load(ordering: .relaxed)
            return stored > 0 ? stored : activeProcessors
        }
        set {
            precondition(newValue >= 1, "Parallelism.threadCount must be at least 1, got \(newValue)")
            storedThreadCount.store(newValue, ordering: .relaxed)
        }
    }

    /// Runs `body(task)` for every task in `0..<taskCount` on up to `threads` workers.
    ///
    /// Workers claim tasks from a shared counter, so a worker that wakes late takes fewer. Tasks
    /// must be independent (each writes a disjoint part of the output); then the result does not
    /// depend on `threads` or on which worker ran which task.
    @usableFromInline package static func forEachTask(
        _ taskCount: Int, threads: Int = Parallelism.threadCount,
        _ body: @Sendable (_ task: Int) -> Void
    ) {
        guard taskCount > 0 else { return }
        let workers = max(1, min(threads, taskCount))
        if workers == 1 {
            for task in 0..<taskCount { body(task) }
            return
        }
        if WorkerPool.shared.run(taskCount, threads: workers, body) { return }
        // The pool is running another loop (a nested or concurrent one): Dispatch's workers.
        let nextTask = Atomic<Int>(0)
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let task = nextTask.wrappingAdd(1, ordering: .relaxed).oldValue
                if task >= taskCount { return }
                body(task)
            }
        }
    }
}

/// A mutable pointer that may be captured by the `@Sendable` closures of `Parallelism.forEachTask`.
///
/// Invariant (the caller's duty): concurrent tasks write disjoint elements through it, and nobody
/// reads an element another task writes until the parallel loop has returned.
@usableFromInline package struct SendableMutablePointer<Pointee>: @unchecked Sendable {
    /// The wrapped pointer.
    @usableFromInline package let base: UnsafeMutablePointer<Pointee>
    /// Wraps `base`.
    @usableFromInline package init(_ base: UnsafeMutablePointer<Pointee>) { self.base = base }
}

/// A read-only pointer that may be captured by `@Sendable` closures (the memory must not change
/// while the parallel loop runs).
@usableFromInline package struct SendablePointer<Pointee>: @unchecked Sendable {
    /// The wrapped pointer.
    @usableFromInline package let base: UnsafePointer<Pointee>
    /// Wraps `base`.
    @usableFromInline package init(_ base: UnsafePointer<Pointee>) { self.base = base }
}
