// How much memory training a configuration takes, estimated before any allocation, so that
// `glam train` and `glam bench model` can refuse what cannot fit with a message instead of dying in
// the allocator. A deliberately generous estimate (the tape keeps most intermediates alive):
//
//   parameters:   P floats of weights, P of gradients, P of the gradient's copy in the update,
//                 plus Adafactor statistics (at most P)                     → 16·P bytes
//   activations:  per layer and row, 8 attention maps N·T² (logits, probabilities, their
//                 gradients and copies), 40·T·M (norms, q/k/v, residuals, their gradients),
//                 8·T·H (the FFN's or the experts' hidden units, with capacity factor slack), and
//                 the logits with their softmax and gradient, 4·T·V          → 4 bytes each
//
// Every product is overflow-checked (CheckedSize): a configuration too large to count is too large
// to train.

import Foundation

/// The estimated memory of a training step.
public struct MemoryEstimate: Sendable, Equatable {
    /// Weights, gradients and optimizer statistics, in bytes (`Int.max` when it overflows).
    public let parameterBytes: Int
    /// Activations kept for the backward pass, in bytes (`Int.max` when it overflows).
    public let activationBytes: Int

    /// The estimate for `configuration` trained on batches of `batchSize` rows of `length` tokens.
    public init(configuration c: ModelConfiguration, batchSize b: Int, length t: Int) {
        let (product, sum) = (CheckedSize.product, CheckedSize.sum)
        // P from every parameter's shape, overflow-checked (a configuration from a file may be huge).
        parameterBytes = product([16, c.problem == nil ? sum(ParameterPath.all(in: c).map { product($0.shape(in: c)) }) : Int.max])
        let hidden = max(c.ffDim, 2 * c.moeHiddenDim)
        let perLayer = sum([
            product([8, c.numHeads, t, t]), product([40, t, c.modelDim]), product([8, t, hidden]),
        ])
        activationBytes = product([4, b, sum([product([c.numLayers, perLayer]), product([4, t, c.vocabSize])])])
    }

    /// Parameters and activations together.
    public var totalBytes: Int { parameterBytes > Int.max - activationBytes ? Int.max : parameterBytes + activationBytes }

    /// This machine's physical memory in bytes.
    public static var physicalMemory: Int { CheckedSize.physicalMemory }

    /// Whether the estimate fits in 80% of `available` bytes.
    public func fits(in available: Int = physicalMemory) -> Bool { Self.fits(totalBytes, in: available) }

    /// Whether `bytes` fit in 80% of `available` bytes (the margin every size check of glam keeps).
    public static func fits(_ bytes: Int, in available: Int = physicalMemory) -> Bool { Double(bytes) <= 0.8 * Double(available) }

    /// `bytes` as "12.3 GB".
    public static func describe(_ bytes: Int) -> String { CheckedSize.describe(bytes) }
}
