// Reusable, 64-byte-aligned scratch memory for packing GEMM operands.
//
// Allocating fresh packing buffers on every call costs a page fault per 4 KiB touched, which at
// n = 512 took longer than the packing itself. Buffers are therefore lent from a small pool and
// returned after use. The pool is shared by all threads (a `Mutex`), so concurrent GEMMs (the
// virtual mesh's cores) each get their own buffer.
//
// For tests, `guardsPages` lends every buffer fresh, ending exactly where a page the process may not
// touch begins: a packing loop that writes or reads one element past what it asked for faults at
// once, where a pooled buffer (whose capacity may be larger) would hide it, from AddressSanitizer too.

import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// A 64-byte-aligned block of `Float`s lent by `ScratchBuffers`.
struct ScratchBuffer: @unchecked Sendable {
    let base: UnsafeMutablePointer<Float>
    let capacity: Int
    /// The mapping of a guarded buffer (nil: heap memory, kept in the pool).
    var mapping: (start: UnsafeMutableRawPointer, length: Int)? = nil
}

enum ScratchBuffers {
    /// At most this many idle buffers are kept; more are freed on return.
    private static let maximumIdle = 8
    private static let idle = Mutex<[ScratchBuffer]>([])
    /// Buffers allocated so far (not lent from the pool), for tests of the reuse.
    static let allocations = Atomic<Int>(0)
    /// Buffers freed so far (evicted from the pool, or guarded ones unmapped), for tests that none leaks.
    static let frees = Atomic<Int>(0)
    /// The buffers idle in the pool now.
    static var idleCount: Int { idle.withLock { $0.count } }

    /// Lends a buffer of at least `count` floats (contents unspecified) to `body`.
    static func withBuffer<R>(count: Int, _ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        let buffer = acquire(count: max(count, 1))
        defer { release(buffer) }
        return try body(buffer.base)
    }

    /// Whether buffers are lent against a guard page (tests only; much slower).
    static let guardsPages = Atomic<Bool>(false)

    private static func acquire(count: Int) -> ScratchBuffer {
        if guardsPages.load(ordering: .relaxed) { return guarded(count: count) }
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

    /// A fresh buffer of `count` floats (rounded up to 16, keeping the 64-byte alignment) whose end
    /// is the start of an inaccessible page.
    private static func guarded(count: Int) -> ScratchBuffer {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let bytes = (count + 15) / 16 * 64
        let dataPages = (bytes + page - 1) / page
        let length = (dataPages + 1) * page
        guard let start = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), start != MAP_FAILED,
            mprotect(start + dataPages * page, page, PROT_NONE) == 0
        else { fatalError("ScratchBuffers: cannot map a guarded buffer of \(bytes) bytes") }
        let base = (start + dataPages * page - bytes).bindMemory(to: Float.self, capacity: bytes / 4)
        allocations.add(1, ordering: .relaxed)
        return ScratchBuffer(base: base, capacity: bytes / 4, mapping: (start, length))
    }

    private static func release(_ buffer: ScratchBuffer) {
        if let mapping = buffer.mapping {
            munmap(mapping.start, mapping.length)
            frees.add(1, ordering: .relaxed)
            return
        }
        let evicted: ScratchBuffer? = idle.withLock { buffers in
            buffers.append(buffer)
            guard buffers.count > maximumIdle else { return nil }
            // Drop the smallest: large buffers are the expensive ones to fault in again.
            let smallest = buffers.indices.min { buffers[$0].capacity < buffers[$1].capacity }!
            return buffers.remove(at: smallest)
        }
        if let evicted {
            evicted.base.deallocate()
            frees.add(1, ordering: .relaxed)
        }
    }
}
