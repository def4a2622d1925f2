// One owner per run directory: `glam train` and each run of `glam compare` hold an exclusive
// flock(2) on DIR/.glam.lock while they write there, so a second process on the same directory is
// refused at once with the first one's pid, instead of both exiting 0 with one run's metrics beside
// the other's checkpoint. The kernel drops the lock when its process exits, however it exits, so a
// killed run never leaves a directory locked; the file itself stays (removing it would race).

import Foundation

/// An exclusive lock on a run directory, held until `unlock()` (or the process's end).
final class RunDirectoryLock {
    /// The lock file's name inside the directory.
    static let fileName = ".glam.lock"
    private var descriptor: Int32

    /// Takes the lock of `directory` (which must exist) without waiting.
    ///
    /// - Throws: `UsageError` naming the directory and the pid of the process that holds it, or why
    ///   the lock file cannot be opened.
    init(_ directory: URL, command: String) throws(UsageError) {
        let path = directory.appendingPathComponent(Self.fileName).path
        descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard descriptor >= 0 else {
            throw UsageError("\(command): cannot lock \(directory.path): \(path): \(String(cString: strerror(errno)))")
        }
        var information = stat()
        guard fstat(descriptor, &information) == 0, information.st_mode & S_IFMT == S_IFREG else {
            close(descriptor)
            throw UsageError("\(command): cannot lock \(directory.path): \(path) is not a regular file")
        }
        guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
            let code = errno
            let owner = Self.owner(descriptor)
            close(descriptor)
            if code == EWOULDBLOCK {
                throw UsageError(
                    "\(command): \(directory.path) is in use by another glam process\(owner.map { " (pid \($0))" } ?? ""); wait for it to finish, or choose another --output"
                )
            }
            throw UsageError("\(command): cannot lock \(directory.path): \(String(cString: strerror(code)))")
        }
        // The owner's pid, for the message another process prints.
        let text = Array("\(ProcessInfo.processInfo.processIdentifier)\n".utf8)
        if ftruncate(descriptor, 0) == 0 { _ = text.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) } }
    }

    /// The pid recorded in the lock file, if it holds one.
    private static func owner(_ descriptor: Int32) -> Int? {
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Releases the lock.
    func unlock() {
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
    }

    deinit { unlock() }
}
