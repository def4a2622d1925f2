// Parallel loops over the elements or rows of a tensor, with a partition fixed by the sizes alone
// (never by the thread count), and output arrays that are written once instead of zero-filled
// first. Every element is computed by exactly one task, by the same arithmetic, so pointwise and
// row-wise results are bitwise identical for any number of threads.

extension Parallelism {
    /// Elements per task of the pointwise loops (64 KiB of Float): large enough that waking a
    /// worker costs little against the work, small enough to balance two to eight cores.
    @usableFromInline package static let elementsPerTask = 16_384

    /// Calls `body` on consecutive ranges covering `0..<count`, each about `grain` items long
    /// (the last shorter). The ranges depend only on `count` and `grain`; they run on up to
    /// `threadCount` workers when there are at least two, serially otherwise.
    @usableFromInline package static func forEachRange(
        _ count: Int, grain: Int = elementsPerTask, _ body: @Sendable (Range<Int>) -> Void
    ) {
        guard count > 0 else { return }
        let grain = max(1, grain)
        let tasks = (count + grain - 1) / grain
        if tasks == 1 {
            body(0..<count)
            return
        }
        forEachTask(tasks) { task in
            body((task * grain)..<min(count, (task + 1) * grain))
        }
    }

    /// Calls `body(row)` for every row in `0..<rows`, where a row costs about `rowLength` elements
    /// work: rows are grouped into tasks of about `elementsPerTask` elements by `forEachRange`.
    @usableFromInline package static func forEachRow(_ rows: Int, rowLength: Int, _ body: @Sendable (_ row: Int) -> Void) {
        forEachRange(rows, grain: rowsPerTask(rowLength: rowLength)) { range in
            for row in range { body(row) }
        }
    }

    /// The number of rows of `rowLength` elements that make about `elementsPerTask` elements.
    @usableFromInline package static func rowsPerTask(rowLength: Int) -> Int {
        max(1, elementsPerTask / max(1, rowLength))
    }
}

/// A value that may be captured by `@Sendable` closures although its type is not `Sendable`.
///
/// Invariant (the user's duty): the value is only read while the closures run, and reading it
/// from several threads at once is safe (a pure function, an immutable buffer).
@usableFromInline
struct UncheckedSendable<Value>: @unchecked Sendable {
    @usableFromInline let value: Value
    @usableFromInline init(_ value: Value) { self.value = value }
}

extension Array where Element: BitwiseCopyable {
    /// An array of `count` elements that `fill` initialises, every one of them, without first
    /// zero-filling the memory.
    @inlinable
    static func filled(count: Int, _ fill: (UnsafeMutableBufferPointer<Element>) -> Void) -> [Element] {
        [Element](unsafeUninitializedCapacity: count) { buffer, initialized in
            fill(buffer)
            initialized = count
        }
    }
}
