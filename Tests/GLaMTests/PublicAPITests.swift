// The library's public API, listed: every public declaration of Sources/GLaM (with its enclosing
// type, and the cases and requirements of public enums and protocols) must be in
// Tests/PublicAPI.txt, and nothing else may be, so that the public surface grows only when someone
// means it to; and every public top-level type and function is placed in the DocC topics of
// GLaM.docc/GLaM.md, where a reader meets the API. After a deliberate change, regenerate the list:
//
//     GLAM_WRITE_PUBLIC_API=1 swift test --filter PublicAPITests
//
// The declarations are read from the source text with comments and string literals removed; a
// declaration spread over several lines is joined into one, whitespace collapsed, attributes that
// do not change the API (`@inlinable`, `@_specialize`, …) dropped.

import Foundation
import Testing

struct PublicAPITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let listURL = root.appendingPathComponent("Tests/PublicAPI.txt")

    static func currentAPI() throws -> [String] {
        let library = root.appendingPathComponent("Sources/GLaM")
        let files = try #require(FileManager.default.enumerator(at: library, includingPropertiesForKeys: nil)).compactMap { $0 as? URL }
            .filter { $0.pathExtension == "swift" }.sorted { $0.path < $1.path }
        var lines: Set<String> = []
        for file in files {
            for declaration in PublicDeclarations.read(try String(contentsOf: file, encoding: .utf8)) { lines.insert(declaration) }
        }
        return lines.sorted()
    }

    @Test("the public API is exactly the reviewed list in Tests/PublicAPI.txt")
    func publicAPIIsListed() throws {
        let current = try Self.currentAPI()
        #expect(current.count > 100)  // the reader found the library's declarations
        if ProcessInfo.processInfo.environment["GLAM_WRITE_PUBLIC_API"] == "1" {
            let header = """
                # The public API of the GLaM library, one declaration per line (Tests/GLaMTests/PublicAPITests.swift).
                # Regenerate after a deliberate change: GLAM_WRITE_PUBLIC_API=1 swift test --filter PublicAPITests

                """
            try (header + current.joined(separator: "\n") + "\n").write(to: Self.listURL, atomically: true, encoding: .utf8)
        }
        let listed = try String(contentsOf: Self.listURL, encoding: .utf8).split(separator: "\n").map(String.init)
            .filter { !$0.isEmpty && !$0.hasPrefix("#") }
        let added = Set(current).subtracting(listed).sorted(), removed = Set(listed).subtracting(current).sorted()
        #expect(added.isEmpty, "public declarations not in Tests/PublicAPI.txt:\n\(added.joined(separator: "\n"))")
        #expect(removed.isEmpty, "Tests/PublicAPI.txt lists declarations that are not public:\n\(removed.joined(separator: "\n"))")
    }

    @Test("every public top-level type and function is placed in the DocC topics")
    func topLevelDeclarationsAreInTheTopics() throws {
        let topics = try String(contentsOf: Self.root.appendingPathComponent("Sources/GLaM/GLaM.docc/GLaM.md"), encoding: .utf8)
        let linked = Set(
            topics.components(separatedBy: "``").enumerated().filter { $0.offset % 2 == 1 }.map { link in
                String(link.element.prefix { $0 != "/" && $0 != "(" && $0 != "-" })
            })
        let topLevel = Set(
            try Self.currentAPI().filter { !$0.contains(": ") || $0.hasPrefix(": ") }.compactMap { line -> String? in
                let words = line.split(whereSeparator: { " (<:".contains($0) }).map(String.init)
                guard let kind = words.firstIndex(where: { ["struct", "enum", "class", "protocol", "typealias", "func"].contains($0) }),
                    kind + 1 < words.count
                else { return nil }
                return words[kind + 1]
            })
        let missing = topLevel.subtracting(linked).sorted()
        #expect(topLevel.count > 20)
        #expect(missing.isEmpty, "public declarations the DocC topics of GLaM.md do not place: \(missing)")
    }

    @Test("the reader of public declarations: scopes, multi-line signatures, enum cases, protocol requirements")
    func readerFindsDeclarations() {
        let source = """
            // public struct InAComment {}
            public struct Outer<T> {
                public var x: Int = 3
                var hidden: Int
                public func f(
                    _ a: Int,  // a comment
                    b: String = "public func g()"
                ) -> Int { 0 }
                struct Inner { public func notPublic() {} }
                public enum Kind { case a, b(Int) }
            }
            extension Outer where T == Int {
                @inlinable public static func h() {}
            }
            package struct P { public func no() {} }
            public protocol Q { var y: Int { get } }
            public func free() throws(ModelError) -> Int { 1 }
            """
        #expect(
            PublicDeclarations.read(source) == [
                ": public struct Outer<T>", "Outer: public var x: Int", "Outer: public func f( _ a: Int, b: String = \"\" ) -> Int",
                "Outer: public enum Kind", "Outer.Kind: case a, b(Int)", "Outer: public static func h()", ": public protocol Q",
                "Q: var y: Int { get }", ": public func free() throws(ModelError) -> Int",
            ])
    }
}

/// Reads the public declarations of one Swift source file (see the file header).
enum PublicDeclarations {
    static func read(_ source: String) -> [String] {
        let code = strippingCommentsAndStrings(source)
        var out: [String] = []
        // The scopes the text is in: for each open brace, the type it belongs to (nil for any other
        // brace), whether that type is public, and whether it is a public enum or protocol (whose
        // cases and requirements are public without the word).
        struct Scope {
            var name: String?
            var isPublic: Bool
            var kind: String?
        }
        var scopes: [Scope] = []
        var statement = ""
        var parentheses = 0
        func path() -> String { scopes.compactMap(\.name).joined(separator: ".") }
        func insidePublicTypes() -> Bool { scopes.allSatisfy { $0.name == nil ? false : $0.isPublic } }
        func finish(opening brace: Bool) {
            let text = normalized(statement)
            statement = ""
            let words = text.split(separator: " ").map(String.init)
            let kinds = ["struct", "enum", "class", "protocol", "extension", "actor"]
            let typeKeyword = words.firstIndex { kinds.contains($0) }
            let isDeclarationOfType = typeKeyword.map { k in words[..<k].allSatisfy { isModifier($0) } } ?? false
            let isPublic = words.prefix { isModifier($0) }.contains("public")
            let enclosing = scopes.last
            let implicit = enclosing.map { $0.isPublic && ($0.kind == "enum" && words.first == "case" || $0.kind == "protocol") } ?? false
            if !text.isEmpty, insidePublicTypes(), isPublic || implicit, !(words.first == "extension") {
                var signature = text
                if !brace, let equals = topLevelEquals(signature), !signature.contains(" func "), !signature.hasPrefix("func ") {
                    signature = String(signature[..<equals]).trimmingCharacters(in: .whitespaces)
                }
                out.append("\(path()): \(signature)")
            }
            guard brace else { return }
            if isDeclarationOfType, let k = typeKeyword, k + 1 < words.count {
                let name = String(words[k + 1].prefix { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "." })
                let publicType = words[k] == "extension" || isPublic
                scopes.append(Scope(name: name, isPublic: publicType, kind: words[k]))
            } else {
                scopes.append(Scope(name: nil, isPublic: false, kind: nil))
            }
        }
        var index = code.startIndex
        var bodyDepth = 0  // braces of a declaration's body (a function, an accessor): skipped whole
        while index < code.endIndex {
            let character = code[index]
            if bodyDepth > 0 {
                if character == "{" { bodyDepth += 1 } else if character == "}" { bodyDepth -= 1 }
                index = code.index(after: index)
                continue
            }
            switch character {
            case "(", "[": parentheses += 1; statement.append(character)
            case ")", "]": parentheses -= 1; statement.append(character)
            case "{":
                let words = normalized(statement).split(separator: " ")
                let opensType =
                    words.contains { ["struct", "enum", "class", "protocol", "extension", "actor"].contains(String($0)) }
                    && words.prefix { isModifier(String($0)) }.count
                        == words.firstIndex { ["struct", "enum", "class", "protocol", "extension", "actor"].contains(String($0)) }
                if opensType || statement.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    finish(opening: true)
                } else if scopes.last?.kind == "protocol" {
                    // A requirement's accessors, `var y: Int { get }`: part of the declaration.
                    var requirement = "{"
                    var depth = 1
                    index = code.index(after: index)
                    while index < code.endIndex, depth > 0 {
                        let c = code[index]
                        if c == "{" { depth += 1 } else if c == "}" { depth -= 1 }
                        requirement.append(c)
                        index = code.index(after: index)
                    }
                    statement += " " + requirement
                    finish(opening: false)
                    continue
                } else {
                    finish(opening: false)
                    bodyDepth = 1
                }
            case "}":
                finish(opening: false)
                if !scopes.isEmpty { scopes.removeLast() }
            case "\n", ";":
                if parentheses == 0 && !continues(statement, at: code[index...]) { finish(opening: false) } else { statement.append(" ") }
            default:
                statement.append(character)
            }
            index = code.index(after: index)
        }
        finish(opening: false)
        return out
    }

    /// Whether the statement goes on after this line break: an open `<`, a trailing operator or
    /// comma, or a next line that starts with `->`, `throws`, `where`, `.` or `&`.
    static func continues(_ statement: String, at rest: Substring) -> Bool {
        let trimmed = statement.trimmingCharacters(in: .whitespaces)
        if trimmed.isEmpty { return false }
        if let last = trimmed.last, ",:=&|-+*/".contains(last) || trimmed.hasSuffix("->") { return true }
        if trimmed.filter({ $0 == "<" }).count > trimmed.filter({ $0 == ">" }).count - trimmed.components(separatedBy: "->").count + 1 {
            return true
        }
        let next = rest.dropFirst().drop { $0 == " " || $0 == "\n" }
        return ["->", "throws", "rethrows", "where", "async", "&", "."].contains { next.hasPrefix($0) }
    }

    static func isModifier(_ word: String) -> Bool {
        word.hasPrefix("@") || word.hasPrefix("public") || word.hasPrefix("package") || word.hasPrefix("private")
            || word.hasPrefix("fileprivate") || word.hasPrefix("internal")
            || ["static", "final", "mutating", "nonmutating", "override", "convenience", "indirect", "required", "nonisolated", "open"]
                .contains(word)
    }

    /// The position of the first `=` outside parentheses and angle brackets (a stored property's
    /// initial value), if any.
    static func topLevelEquals(_ text: String) -> String.Index? {
        var depth = 0
        var index = text.startIndex
        while index < text.endIndex {
            let c = text[index]
            if "([<".contains(c) { depth += 1 } else if ")]>".contains(c) { depth -= 1 }
            if c == "=", depth == 0 {
                let next = text.index(after: index)
                let previous = index > text.startIndex ? text[text.index(before: index)] : " "
                if next == text.endIndex || (text[next] != "=" && !"=!<>".contains(previous)) { return index }
            }
            index = text.index(after: index)
        }
        return nil
    }

    /// Whitespace collapsed, attributes that do not change the API removed.
    static func normalized(_ text: String) -> String {
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).map(String.init)
        var kept: [String] = []
        var skippingAttribute = 0
        for word in words {
            if skippingAttribute > 0 {
                skippingAttribute += word.filter { $0 == "(" }.count - word.filter { $0 == ")" }.count
                continue
            }
            if ["@inlinable", "@usableFromInline", "@discardableResult", "@frozen"].contains(word) || word.hasPrefix("@inline(") {
                continue
            }
            if word.hasPrefix("@_specialize(") || word.hasPrefix("@_") {
                skippingAttribute = word.filter { $0 == "(" }.count - word.filter { $0 == ")" }.count
                continue
            }
            kept.append(word)
        }
        words = kept
        return words.joined(separator: " ")
    }

    /// `source` with comments removed and every string literal emptied (`""`), line breaks kept.
    static func strippingCommentsAndStrings(_ source: String) -> String {
        let s = Array(source)
        var out: [Character] = []
        var i = 0
        func at(_ text: String) -> Bool { i + text.count <= s.count && String(s[i..<(i + text.count)]) == text }
        while i < s.count {
            if at("//") {
                while i < s.count && s[i] != "\n" { i += 1 }
            } else if at("/*") {
                i += 2
                while i < s.count && !at("*/") { if s[i] == "\n" { out.append("\n") }; i += 1 }
                i += 2
            } else if s[i] == "#" || s[i] == "\"" {
                var hashes = 0
                while i + hashes < s.count && s[i + hashes] == "#" { hashes += 1 }
                guard i + hashes < s.count, s[i + hashes] == "\"" else { out.append(s[i]); i += 1; continue }
                i += hashes
                let multiline = at("\"\"\"")
                let quote = multiline ? "\"\"\"" : "\""
                i += quote.count
                let close = quote + String(repeating: "#", count: hashes)
                var depth = 0
                while i < s.count {
                    if depth == 0 && at(close) { i += close.count; break }
                    if s[i] == "\\" && hashes == 0 {
                        if i + 1 < s.count && s[i + 1] == "(" { depth += 1; i += 2; continue }
                        i += 2
                        continue
                    }
                    if depth > 0 && s[i] == "(" { depth += 1 }
                    if depth > 0 && s[i] == ")" { depth -= 1 }
                    if s[i] == "\n" { out.append("\n") }
                    i += 1
                }
                out.append(contentsOf: "\"\"")
            } else {
                out.append(s[i])
                i += 1
            }
        }
        return String(out)
    }
}
