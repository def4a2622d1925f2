// The `glam` executable: forwards to GLaMCLI and exits with its status.

import Foundation
import GLaMCLI

#if os(Linux)
    // Training allocates and frees tensors of megabytes every step. glibc would map and unmap each
    // from the kernel (a page fault per 4 KiB, ~20% of a training step); keep them in the heap.
    // glibc's `int mallopt(int, int)` (malloc.h, not in the Glibc module); the constants are
    // M_TRIM_THRESHOLD −1, M_TOP_PAD −2, M_MMAP_THRESHOLD −3.
    @_silgen_name("mallopt") func mallopt(_ parameter: Int32, _ value: Int32) -> Int32
    _ = mallopt(-3, 1 << 30)
    _ = mallopt(-1, Int32.max)
    _ = mallopt(-2, 256 << 20)
#endif

// A reader that goes away (`glam params | head -1`) makes writes fail with EPIPE, which
// Output.processStreams reports as exit status 2, instead of killing the process mid-write.
signal(SIGPIPE, SIG_IGN)

exit(CommandLineTool.run(Array(CommandLine.arguments.dropFirst()), output: .processStreams()))
