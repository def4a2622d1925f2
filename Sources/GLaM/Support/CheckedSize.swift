// Size arithmetic for everything a user can size (a tensor's elements, a training step's memory, a
// benchmark's operands): products and sums that saturate at Int.max instead of trapping on
// overflow, so that a size too large to count is refused with a message like any other size that
// is too large, rather than crashing the process while it is checked.

import Foundation

/// Saturating size arithmetic.
package enum CheckedSize {
    /// The product of `factors`: 0 when one is 0 or negative (an empty extent), else the exact
    /// product, or `Int.max` when that exceeds it.
    package static func product(_ factors: [Int]) -> Int {
        if factors.contains(where: { $0 <= 0 }) { return 0 }
        var total = 1
        for factor in factors {
            let (value, overflow) = total.multipliedReportingOverflow(by: factor)
            if overflow { return Int.max }
            total = value
        }
        return total
    }

    /// The sum of `terms` (a negative term counts as 0), or `Int.max` when it overflows.
    package static func sum(_ terms: [Int]) -> Int {
        var total = 0
        for term in terms {
            let (value, overflow) = total.addingReportingOverflow(max(term, 0))
            if overflow { return Int.max }
            total = value
        }
        return total
    }

    /// This machine's physical memory in bytes, read once (Foundation reads it from files on
    /// Linux, which would cost every MoE layer's size check a few system calls).
    package static let physicalMemory = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    /// `bytes` in words, as "12.3 GB" (`Int.max`, a size too large to count: "more than 9.2 EB").
    package static func describe(_ bytes: Int) -> String {
        bytes == Int.max ? "more than 9.2 EB" : String(format: "%.1f GB", Double(bytes) / 1e9)
    }
}
