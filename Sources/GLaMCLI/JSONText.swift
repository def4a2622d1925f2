// The one writer of the JSON that `glam` prints and logs (`--json` lines, metrics.jsonl, reports,
// fixture configurations): Foundation's JSONSerialization with sorted keys, so the same values give
// the same bytes, and "/" unescaped, so that paths read as written. JSON has no NaN or infinity: a
// non-finite number is written as null (a loss that diverged is "no value", not a number a reader
// could average).

import Foundation

/// JSON text of `glam`'s outputs.
enum JSONText {
    /// `value` (dictionaries, arrays, strings, numbers, booleans, `NSNull`) as one line of JSON
    /// with sorted keys; non-finite numbers become null.
    static func line(_ value: Any) -> String {
        let finite = finite(value)
        // Only the types listed above reach here, each of which JSONSerialization writes.
        guard JSONSerialization.isValidJSONObject(finite) || finite is String || finite is NSNumber || finite is NSNull,
            let data = try? JSONSerialization.data(
                withJSONObject: finite, options: [.sortedKeys, .fragmentsAllowed, .withoutEscapingSlashes])
        else {
            preconditionFailure("JSONText.line: \(type(of: value)) is not a JSON value")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// `value` with every non-finite Double or Float replaced by null.
    static func finite(_ value: Any) -> Any {
        switch value {
        // Only a non-finite number is replaced; every other value is kept as it is (a Bool or an
        // integer from Foundation also casts to Double, and must stay a Bool or an integer).
        case let number as Double where !number.isFinite: return NSNull()
        case let number as Float where !number.isFinite: return NSNull()
        case let object as [String: Any]: return object.mapValues(finite)
        case let array as [Any]: return array.map(finite)
        default: return value
        }
    }
}
