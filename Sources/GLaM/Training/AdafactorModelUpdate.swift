// Adafactor over a whole model: every weight updated in parallel, one task per weight, each exactly
// as the single-weight update (AdafactorKernel.swift) computes it; and GLaM's skipped step, the one
// rule both trainers use to decide whether a step's update is applied.

extension Adafactor {
    /// Updates every parameter with its gradient (`gradients` is a model of gradient tensors), unless
    /// the loss or any gradient element is NaN or infinite: then nothing changes (GLaM's skipped
    /// step). Returns whether the update was applied.
    mutating func updateIfFinite(
        _ parameters: inout ModelParameters, gradients: ModelParameters, loss: Float, step: Int, learningRate: Float
    ) -> Bool {
        guard Self.isFiniteStep(loss: loss, gradients: gradients.weights.map(\.weight)) else { return false }
        update(&parameters, gradients: gradients, step: step, learningRate: learningRate)
        return true
    }

    /// Whether a step is applied (GLaM's skipped step, on one device and on the mesh alike): the loss
    /// and every element of every gradient finite, checked in parallel over fixed chunks.
    static func isFiniteStep(loss: Float, gradients tensors: [Tensor<Float>]) -> Bool {
        guard loss.isFinite else { return false }
        let grain = 1 << 18
        let chunks = tensors.indices.flatMap { t in
            stride(from: 0, to: tensors[t].scalarCount, by: grain).map { (tensor: t, start: $0) }
        }
        var finite = [Bool](repeating: true, count: chunks.count)
        finite.withUnsafeMutableBufferPointer { buffer in
            let out = SendableMutablePointer(buffer.baseAddress!)
            Parallelism.forEachTask(chunks.count) { task in
                let (t, start) = chunks[task]
                out.base[task] = tensors[t].scalars.withUnsafeBufferPointer { all in
                    allFinite(all.baseAddress! + start, count: min(all.count, start + grain) - start)
                }
            }
        }
        return !finite.contains(false)
    }

    /// Whether all `count` floats at `x` are finite: x · 0 is ±0 for a finite x and NaN for an
    /// infinite or NaN one, and a sum of ±0 is never NaN, so the sum of x · 0 over sixteen lanes
    /// is NaN exactly when some element is not finite (no branch per element).
    static func allFinite(_ x: UnsafePointer<Float>, count: Int) -> Bool {
        var (a, b) = (SIMD16<Float>(), SIMD16<Float>())
        var i = 0
        while i + 32 <= count {
            a += UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self) * 0
            b += UnsafeRawPointer(x + i + 16).loadUnaligned(as: SIMD16<Float>.self) * 0
            i += 32
        }
        var rest: Float = 0
        while i < count {
            rest += x[i] * 0
            i += 1
        }
        return !(a + b).sum().isNaN && !rest.isNaN
    }

    /// Updates every parameter with its gradient (`gradients` is a model of gradient tensors), the
    /// weights in parallel: each is one task (largest first), computed exactly as
    /// `update(_:weight:gradient:step:learningRate:)` would, so the bits never depend on the
    /// thread count. Each weight is moved out of `parameters` for its update, so that, when nothing
    /// else holds it, it is updated in place instead of copied first.
    public mutating func update(_ parameters: inout ModelParameters, gradients: ModelParameters, step: Int, learningRate: Float) {
        let all = gradients.weights
        guard !all.isEmpty else { return }
        let order = all.indices.sorted { all[$0].weight.scalarCount > all[$1].weight.scalarCount }
        var weights = all.map { entry -> Tensor<Float> in
            let weight = parameters[entry.path]
            parameters[entry.path] = Tensor(zeros: [0])  // the only other reference, until the update is done
            return weight
        }
        var updatedSlots = all.map { slots.removeValue(forKey: $0.path) }
        let optimizer = self
        weights.withUnsafeMutableBufferPointer { weightBuffer in
            updatedSlots.withUnsafeMutableBufferPointer { slotBuffer in
                let (w, s) = (SendableMutablePointer(weightBuffer.baseAddress!), SendableMutablePointer(slotBuffer.baseAddress!))
                Parallelism.forEachTask(order.count) { task in
                    let index = order[task]
                    optimizer.update(
                        weight: &w.base[index], gradient: all[index].weight, slot: &s.base[index], step: step, learningRate: learningRate)
                }
            }
        }
        for (index, entry) in all.enumerated() {
            parameters[entry.path] = weights[index]
            slots[entry.path] = updatedSlots[index]
        }
    }
}
