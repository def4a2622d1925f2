// A note, once per process, that this is a debug build: Swift's SIMD types are generic structs that
// only the optimiser turns into vector instructions, so an unoptimised build of the kernels runs
// hundreds of times slower. On the AMD EPYC Zen 5 host (2026-12-06, one thread): a training step of
// `tiny` 330×, its forward pass 560×, the GEMM about 900× (Scripts/bench/debug_slowdown.sh). `glam`
// prints the note through its output before a slow command; the library prints it to standard
// error when a `Trainer` is made, for a program that imports the package and was built without
// `-c release`.

import Foundation
import Synchronization

/// The debug-build note, printed at most once per process.
package enum DebugBuildNote {
    /// Whether this module was compiled without optimisation (`#if DEBUG`).
    package static var isDebugBuild: Bool {
        #if DEBUG
            return true
        #else
            return false
        #endif
    }

    /// The note's one line (with its newline).
    package static let text =
        "GLaM: note: this is a debug build, 300 to 600 times slower than a release build (measured on AMD EPYC Zen 5); build with 'swift build -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA'\n"

    private static let claimed = Atomic<Bool>(false)

    /// True once per process in a debug build, for the caller that then prints `text`; false in
    /// a release build and on every later call.
    package static func claim() -> Bool {
        guard isDebugBuild else { return false }
        return !claimed.exchange(true, ordering: .relaxed)
    }

    /// Prints `text` to standard error if no one has yet (debug builds only).
    package static func printOnce() {
        if claim() { FileHandle.standardError.write(Data(text.utf8)) }
    }
}
