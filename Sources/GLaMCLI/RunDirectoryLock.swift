// One owner per run directory: `glam train` and each run of `glam compare` hold an exclusive
// POSIX record lock (fcntl(2) F_SETLK) on DIR/.glam.lock while they write there, so a second
// process on the same directory is refused at once with the first one's pid, instead of both
// exiting 0 with one run's metrics beside the other's checkpoint. The kernel drops the lock when its
// process exits, however it exits, so a killed run never leaves a directory locked; the file itself
// stays (removing it would race).
//
// Why a record lock and not flock(2): a flock belongs to the open file, which a child shares from
// fork until its exec closes the descriptor, so a lock released while another thread of the same
// process is spawning a child stays held for that moment and a run started right after is refused.
// A record lock belongs to the process and is never inherited. Record locks do not conflict within
// one process, so the directories this process holds are also kept in `held`, and a second lock on
// one of them is refused the same way (commands run in-process, as the tests run them).

import Foundation

/// An exclusive lock on a run directory, held until `unlock()` (or the process's end).
final class RunDirectoryLock {
    /// The lock file's name inside the directory.
    static let fileName = ".glam.lock"
    /// The lock files (device, inode) this process holds, guarded by `registry`.
    nonisolated(unsafe) private static var held: Set<FileIdentity> = []
    private static let registry = NSLock()
    private var descriptor: Int32
    private let identity: FileIdentity

    /// A file's identity: the device and inode `stat` reports.
    private struct FileIdentity: Hashable {
        let device: UInt64
        let inode: UInt64
        init(_ information: stat) {
            device = UInt64(information.st_dev)
            inode = UInt64(information.st_ino)
        }
    }

    /// Takes the lock of `directory` (which must exist) without waiting.
    ///
    /// - Throws: `UsageError` naming the directory and the pid of the process that holds it, or why
    ///   the lock file cannot be opened.
    init(_ directory: URL, command: String) throws(UsageError) {
        let path = directory.appendingPathComponent(Self.fileName).path
        func inUse(_ owner: Int?) -> UsageError {
            UsageError(
                "\(command): \(directory.path) is in use by another glam process\(owner.map { " (pid \($0))" } ?? ""); wait for it to finish, or choose another --output"
            )
        }
        Self.registry.lock()
        defer { Self.registry.unlock() }
        // Held by this process: refused before opening, since closing any descriptor of the file
        // would release this process's record lock on it.
        var existing = stat()
        if lstat(path, &existing) == 0, Self.held.contains(FileIdentity(existing)) {
            throw inUse(Int(getpid()))
        }
        let opened = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK, 0o644)
        guard opened >= 0 else {
            throw UsageError("\(command): cannot lock \(directory.path): \(path): \(String(cString: strerror(errno)))")
        }
        var information = stat()
        guard fstat(opened, &information) == 0, information.st_mode & S_IFMT == S_IFREG else {
            close(opened)
            throw UsageError("\(command): cannot lock \(directory.path): \(path) is not a regular file")
        }
        var request = Self.wholeFile(F_WRLCK)
        guard fcntl(opened, F_SETLK, &request) == 0 else {
            let code = errno
            let owner = Self.owner(opened)
            close(opened)
            if code == EAGAIN || code == EACCES { throw inUse(owner) }
            throw UsageError("\(command): cannot lock \(directory.path): \(String(cString: strerror(code)))")
        }
        descriptor = opened
        identity = FileIdentity(information)
        Self.held.insert(identity)
        // The owner's pid, for anyone reading the file.
        let text = Array("\(ProcessInfo.processInfo.processIdentifier)\n".utf8)
        if ftruncate(opened, 0) == 0 { _ = text.withUnsafeBytes { pwrite(opened, $0.baseAddress, $0.count, 0) } }
    }

    /// A record-lock request of `type` over the whole file.
    private static func wholeFile(_ type: Int32) -> flock {
        var request = flock()
        request.l_type = Int16(type)
        request.l_whence = Int16(SEEK_SET)
        request.l_start = 0
        request.l_len = 0
        return request
    }

    /// The pid of the process holding the lock, as the kernel reports it, else as the file records it.
    private static func owner(_ descriptor: Int32) -> Int? {
        var probe = wholeFile(F_WRLCK)
        if fcntl(descriptor, F_GETLK, &probe) == 0, probe.l_type != Int16(F_UNLCK), probe.l_pid > 0 { return Int(probe.l_pid) }
        var buffer = [UInt8](repeating: 0, count: 32)
        let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, 0) }
        guard count > 0 else { return nil }
        return Int(String(decoding: buffer[..<count], as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Releases the lock.
    func unlock() {
        Self.registry.lock()
        defer { Self.registry.unlock() }
        guard descriptor >= 0 else { return }
        close(descriptor)
        descriptor = -1
        Self.held.remove(identity)
    }

    deinit { unlock() }
}
