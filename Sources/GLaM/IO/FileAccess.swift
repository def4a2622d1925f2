// Whole-file reads and writes. The one writer of every file glam produces (checkpoints, fixtures,
// traces, charts, reports) replaces files atomically: write a temporary file in the same
// directory, flush it, rename it over the target, flush the directory. It refuses targets that are
// not regular files (a device such as /dev/null, a FIFO, a directory: renaming over one would
// replace it) and targets that are one of the command's own inputs (a trace dumped over the
// checkpoint it read). The one reader refuses what is not a regular file (a directory, a FIFO that
// would block forever) with a message naming it.

import Foundation

/// Whole-file reads and atomic writes, with errors in one line naming the file.
package enum FileAccess {
    /// The bytes of the regular file at `url` (memory-mapped when safe).
    ///
    /// - Throws: `ModelError` naming the file: it does not exist, cannot be read, or is not a
    ///   regular file (a directory, a device, a FIFO).
    package static func read(_ url: URL) throws(ModelError) -> Data {
        do {
            return try contents(url)
        } catch {
            throw ModelError("cannot read \(url.path): \(error.cause)")
        }
    }

    /// Why a file could not be read, in a few words.
    struct Problem: Error {
        let cause: String
    }

    /// The bytes of the regular file at `url`, or why not.
    static func contents(_ url: URL) throws(Problem) -> Data {
        var information = stat()
        guard stat(url.path, &information) == 0 else { throw Problem(cause: String(cString: strerror(errno))) }
        guard information.st_mode & S_IFMT == S_IFREG else {
            throw Problem(cause: "it is \(kind(information.st_mode)), not a regular file")
        }
        do {
            return try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw Problem(cause: describe(error))
        }
    }

    /// The UTF-8 text of the regular file at `url`.
    ///
    /// - Throws: `ModelError` naming the file, as `read(_:)` does, or the byte offset of the first
    ///   byte that is not valid UTF-8 (a truncated or binary file).
    package static func readText(_ url: URL) throws(ModelError) -> String {
        let data = try read(url)
        if let text = String(validating: data, as: UTF8.self) { return text }
        var decoder = UTF8()
        var iterator = data.makeIterator()
        var offset = 0
        loop: while true {
            let before = offset
            switch decoder.decode(&iterator) {
            case .scalarValue(let scalar): offset += UTF8.width(scalar)
            case .emptyInput: break loop
            case .error: offset = before; break loop
            }
        }
        throw ModelError("cannot read \(url.path): it is not UTF-8 text (the first invalid byte is at byte \(offset) of \(data.count))")
    }

    /// Writes `data` to `url` atomically: a temporary file `.NAME.tmp-PID-RANDOM` beside it, flushed
    /// to disk, renamed over `url`, and the directory flushed so that the rename itself survives a
    /// power cut. A crash at any point leaves either the old file or the new one, never a mixture.
    ///
    /// - Parameters:
    ///   - data: the file's bytes.
    ///   - url: the target; it must not exist or be a regular file.
    ///   - inputs: files the caller read; `url` must not be one of them (same device and inode).
    ///   - beforeRename: called after the temporary file is complete, before the rename (tests use it
    ///     to simulate a crash).
    /// - Throws: `ModelError` naming the file and the cause in one line.
    package static func writeAtomically(
        _ data: Data, to url: URL, protecting inputs: [URL] = [], beforeRename: (() throws -> Void)? = nil
    ) throws {
        try checkWritable(url, protecting: inputs)
        let directory = url.deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(
            ".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)-\(UInt32.random(in: 0...UInt32.max))")
        guard FileManager.default.createFile(atPath: temporary.path, contents: nil) else {
            throw ModelError("cannot write \(url.path): cannot create a file in \(directory.path) (\(String(cString: strerror(errno))))")
        }
        do {
            do {
                let handle = try FileHandle(forWritingTo: temporary)
                defer { try? handle.close() }
                try handle.write(contentsOf: data)
                try handle.synchronize()
            } catch {
                throw ModelError("cannot write \(url.path): \(describe(error))")
            }
            try beforeRename?()
            guard rename(temporary.path, url.path) == 0 else {
                throw ModelError("cannot write \(url.path): rename failed (\(String(cString: strerror(errno))))")
            }
            synchronizeDirectory(directory)
        } catch {
            try? FileManager.default.removeItem(at: temporary)
            throw error
        }
    }

    /// Creates the directory at `url` and any missing parents (`mkdir -p`); an existing directory
    /// is fine.
    ///
    /// - Throws: `ModelError` naming the path that could not be made and the POSIX cause (for
    ///   example a parent that is a regular file: "Not a directory").
    package static func createDirectory(_ url: URL) throws(ModelError) {
        let path = url.standardizedFileURL.path
        var prefix = path.hasPrefix("/") ? "" : "."
        for component in path.split(separator: "/") {
            prefix += "/" + component
            if mkdir(prefix, 0o755) == 0 { continue }
            let code = errno
            var information = stat()
            if code == EEXIST && stat(prefix, &information) == 0 {
                if information.st_mode & S_IFMT == S_IFDIR { continue }
                throw ModelError("cannot create the directory \(path): \(prefix) is \(kind(information.st_mode)), not a directory")
            }
            throw ModelError("cannot create the directory \(path): \(prefix): \(String(cString: strerror(code)))")
        }
    }

    /// Throws unless `url` may be replaced: it does not exist and its directory does, or it is a
    /// regular file (or a link to one) that is none of `inputs`. Checked before the work whose
    /// result is written, so that a mistyped directory costs nothing.
    ///
    /// - Throws: `ModelError` naming the file and what it is.
    package static func checkWritable(_ url: URL, protecting inputs: [URL] = []) throws(ModelError) {
        var target = stat()
        guard stat(url.path, &target) == 0 else {
            let code = errno
            guard code == ENOENT else { throw ModelError("cannot write \(url.path): \(String(cString: strerror(code)))") }
            let directory = url.deletingLastPathComponent()
            var parent = stat()
            guard stat(directory.path, &parent) == 0 else {
                throw ModelError("cannot write \(url.path): its directory \(directory.path) does not exist")
            }
            guard parent.st_mode & S_IFMT == S_IFDIR else {
                throw ModelError("cannot write \(url.path): \(directory.path) is \(kind(parent.st_mode)), not a directory")
            }
            return
        }
        guard target.st_mode & S_IFMT == S_IFREG else {
            throw ModelError("cannot write \(url.path): it is \(kind(target.st_mode)), not a regular file; give a file path")
        }
        for input in inputs {
            var read = stat()
            if stat(input.path, &read) == 0 && read.st_dev == target.st_dev && read.st_ino == target.st_ino {
                throw ModelError("cannot write \(url.path): it is this command's input \(input.path); give another output path")
            }
        }
    }

    /// What a file of mode `mode` is, in words ("a directory", "a character device" …).
    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFIFO: return "a FIFO"
        case S_IFSOCK: return "a socket"
        case S_IFREG: return "a regular file"
        default: return "not a regular file"
        }
    }

    /// Flushes a directory's entries (the rename) to disk; a failure to flush is not an error the
    /// caller can act on, so it is ignored.
    static func synchronizeDirectory(_ directory: URL) {
        let descriptor = open(directory.path, O_RDONLY)
        guard descriptor >= 0 else { return }
        _ = fsync(descriptor)
        close(descriptor)
    }

    /// Removes the temporary files that writes of `url` left behind when their process died (a
    /// `kill -9` during a save): `.NAME.tmp-PID-*` beside `url` whose PID is not a live process.
    /// Returns the paths removed.
    @discardableResult
    package static func removeStaleTemporaries(of url: URL) -> [String] {
        let directory = url.deletingLastPathComponent()
        let prefix = ".\(url.lastPathComponent).tmp-"
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return [] }
        var removed: [String] = []
        for name in names where name.hasPrefix(prefix) {
            let rest = name.dropFirst(prefix.count).split(separator: "-")
            guard rest.count == 2, let pid = Int32(rest[0]), UInt32(rest[1]) != nil else { continue }
            // kill(pid, 0) fails with ESRCH only when no such process exists.
            guard kill(pid, 0) != 0 && errno == ESRCH else { continue }
            let path = directory.appendingPathComponent(name).path
            if (try? FileManager.default.removeItem(atPath: path)) != nil { removed.append(path) }
        }
        return removed
    }

    /// A file-system error in one line: the POSIX cause (`strerror`) when Foundation's error wraps
    /// one, else its description (never Foundation's "The operation could not be completed").
    package static func describe(_ error: any Error) -> String {
        let ns = error as NSError
        if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
            return String(cString: strerror(Int32(underlying.code)))
        }
        if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
        return ns.localizedDescription
    }
}
