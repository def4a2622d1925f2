// Standard output and standard error of the `glam` executable. Every write goes straight to
// write(2); a write that fails (a full disk, a closed descriptor, a reader that went away) ends the
// process with one line on standard error naming the stream and the cause, and exit status 2,
// instead of Foundation's trap. Files the command writes are atomic or resumable, so a run cut off
// here loses nothing its directory held (the reliability section of the README).

import Foundation

extension Output {
    /// The process's standard output and standard error, written with `write(2)`; call it once,
    /// first thing.
    ///
    /// A failed write to either stream exits the process with status 2 after one line on standard
    /// error (when standard error itself can still be written). SIGPIPE should be ignored
    /// (`signal(SIGPIPE, SIG_IGN)`, as the `glam` executable does) so that a closed pipe is reported
    /// as `EPIPE` rather than killing the process mid-write.
    ///
    /// A process started with descriptor 0, 1 or 2 closed (`glam params >&-`) would hand that number
    /// to the next file it opens, and its "standard output" would be written into a checkpoint or a
    /// lock file. So each closed one is first taken by the wrong end of a pipe: writes to it fail
    /// with EBADF (and reads see EBADF or end of file), exactly as on the closed descriptor.
    package static func processStreams() -> Output {
        StandardStream.reserveClosedDescriptors()
        return Output(
            standard: { StandardStream.output.write($0) },
            error: { StandardStream.error.write($0) })
    }
}

/// One of the process's two output streams.
struct StandardStream: Sendable {
    /// The file descriptor.
    let descriptor: Int32
    /// The stream's name in messages.
    let name: String

    static let output = StandardStream(descriptor: STDOUT_FILENO, name: "standard output")
    static let error = StandardStream(descriptor: STDERR_FILENO, name: "standard error")

    /// Writes all of `text`, retrying after signals and partial writes; on failure reports it and
    /// exits with status 2.
    func write(_ text: String) {
        if let code = Self.write(Array(text.utf8), to: descriptor) {
            if descriptor != STDERR_FILENO {
                _ = Self.write(Array("glam: cannot write to \(name): \(String(cString: strerror(code)))\n".utf8), to: STDERR_FILENO)
            }
            exit(2)
        }
    }

    /// Puts the reading end of a pipe on each of descriptors 1 and 2 that is closed (writes to it
    /// then fail with EBADF) and the writing end on descriptor 0 if it is closed.
    static func reserveClosedDescriptors() {
        for descriptor in [STDIN_FILENO, STDOUT_FILENO, STDERR_FILENO] where fcntl(descriptor, F_GETFD) == -1 && errno == EBADF {
            var ends: [Int32] = [-1, -1]
            guard pipe(&ends) == 0 else { continue }
            let (keep, other) = descriptor == STDIN_FILENO ? (ends[1], ends[0]) : (ends[0], ends[1])
            // pipe() itself takes the lowest free numbers, so one end may already be `descriptor`.
            if keep != descriptor {
                _ = dup2(keep, descriptor)
                close(keep)
            }
            if other != descriptor { close(other) }
        }
    }

    /// Writes every byte of `bytes` to `descriptor`; returns the `errno` of a failed write, or nil.
    static func write(_ bytes: [UInt8], to descriptor: Int32) -> Int32? {
        var offset = 0
        while offset < bytes.count {
            let written = bytes.withUnsafeBytes { buffer in
                Foundation.write(descriptor, buffer.baseAddress! + offset, bytes.count - offset)
            }
            if written < 0 {
                if errno == EINTR { continue }
                return errno
            }
            if written == 0 { return EIO }
            offset += written
        }
        return nil
    }
}
