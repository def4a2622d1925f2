// Reusable, 64-byte-aligned scratch memory for packing GEMM operands.
//
// Allocating fresh packing buffers on every call costs a page fault per 4 KiB touched, which at
// n = 512 took longer than the packing itself. Buffers are therefore lent from a small pool and
// returned after use. The pool is shared by all threads (a `Mutex`), so concurrent GEMMs (the
// virtual mesh's cores) each get their own buffer.

import Synchronization

/// A 64-byte-aligned block of `Float`s lent by `ScratchBuffers`.
struct ScratchBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let capacity: Int
}

enum ScratchBuffers {
    /// At most this many idle buffers are kept; more are freed on return.
    private static let maximumIdle = 8
    private static let idle = Mutex<[ScratchBuffer]>([])
    /// Buffers allocated so far (not lent from the pool), for tests of the reuse.
    static let allocations = Atomic<Int>(0)

    /// Lends a buffer of at least `count` floats (contents unspecified) to `body`.
    static func withBuffer<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = acquire(count: max(count, 1))
        defer { release(buffer) }
        return try body(buffer.base)
    }

    private static func acquire(count: Int) -> ScratchBuffer {
        let reused: ScratchBuffer? = idle.withLock { buffers in
            guard let index = buffers.firstIndex(where: { $0.capacity >= count }) else { return nil }
            return buffers.remove(at: index)
        }
        if let reused { return reused }
        allocations.add(1, ordering: .relaxed)
        let base = UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
            .bindMemory(to: Float.self, capacity: count)
        return ScratchBuffer(base: base, capacity: count)
    }

    private static func release(_ buffer: ScratchBuffer) {
        let evicted: ScratchBuffer? = idle.withLock { buffers in
            buffers.append(buffer)
            guard buffers.count > maximumIdle else { return nil }
            // Drop the smallest: large buffers are the expensive ones to fault in again.
            let smallest = buffers.indices.min { buffers[$0].capacity < buffers[$1].capacity }!
            return buffers.remove(at: smallest)
        }
        evicted?.base.deallocate()
    }
}
