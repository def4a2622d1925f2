// Where GLaM's weights live on a `data × mdl` mesh (praxis `set_sharding_params_v1`;
// see the "Sharding over TPU cores" article): the experts' `wi` `[E, M, H]` and `wo` `[E, H, M]` are split, E over
// `data` and H over `mdl` (GLaM's 2D sharding), so core (i, j) holds `[E/d, M, H/m]` and
// `[E/d, H/m, M]`; every other weight is replicated. Adafactor statistics are split exactly as
// their weights are. Activations are split over batch rows (and so groups) on `data` and
// replicated on `mdl`.

/// The layout of parameters and optimizer statistics on a mesh with a `data` axis and, optionally,
/// an `mdl` axis.
public struct MeshLayout: Sendable, Equatable {
    /// The mesh.
    public let mesh: DeviceMesh
    /// d, the cores along `data` (1 if the mesh has no such axis).
    public let dataCores: Int
    /// m, the cores along `mdl` (1 if the mesh has no such axis).
    public let modelCores: Int
    let dataAxis: Int?
    let modelAxis: Int?

    /// The layout on `mesh`, whose axes must be named `data` and/or `mdl`.
    public init(mesh: DeviceMesh) throws(MeshError) {
        for name in mesh.axisNames where name != DeviceMesh.dataAxisName && name != DeviceMesh.modelAxisName {
            throw MeshError("mesh axis '\(name)' is not supported: training meshes have a 'data' axis and optionally an 'mdl' axis")
        }
        self.mesh = mesh
        dataAxis = mesh.axisNames.firstIndex(of: DeviceMesh.dataAxisName)
        modelAxis = mesh.axisNames.firstIndex(of: DeviceMesh.modelAxisName)
        dataCores = dataAxis.map { mesh.shape[$0] } ?? 1
        modelCores = modelAxis.map { mesh.shape[$0] } ?? 1
    }

    /// The checks a model and batch must pass to be laid out: d divides E, the groups and the
    /// batch rows; m divides the expert hidden size H.
    public func check(_ c: ModelConfiguration, batchSize: Int) throws(MeshError) {
        let (d, m) = (dataCores, modelCores)
        guard batchSize % d == 0 else { throw MeshError("the \(d) cores of axis 'data' do not divide the batch of \(batchSize) rows") }
        guard !c.isMoE || c.numGroups % d == 0 else {
            throw MeshError("the \(d) cores of axis 'data' do not divide the \(c.numGroups) groups")
        }
        guard c.isMoE || m == 1 else { throw MeshError("a dense model has no expert weights to split over the \(m) cores of axis 'mdl'") }
        try Self.checkExperts(c, dataCores: d, modelCores: m)
    }

    /// The check every expert layout shares (the trainer, the communication model, the planner):
    /// d divides E and m divides the expert hidden size H (nothing to check for a dense model).
    static func checkExperts(_ c: ModelConfiguration, dataCores d: Int, modelCores m: Int) throws(MeshError) {
        guard c.isMoE else { return }
        guard c.numExperts % d == 0 else { throw MeshError("the \(d) cores of axis 'data' do not divide the \(c.numExperts) experts") }
        guard c.moeHiddenDim % m == 0 else {
            throw MeshError("the \(m) cores of axis 'mdl' do not divide the expert hidden size \(c.moeHiddenDim)")
        }
    }

    /// The coordinate of `core` along `data` (0 without that axis).
    public func dataCoordinate(of core: Int) -> Int { dataAxis.map { mesh.coordinates(of: core)[$0] } ?? 0 }

    /// The coordinate of `core` along `mdl` (0 without that axis).
    public func modelCoordinate(of core: Int) -> Int { modelAxis.map { mesh.coordinates(of: core)[$0] } ?? 0 }

    /// Core `core`'s part of parameter `path`: E/d experts and H/m hidden units of an expert weight,
    /// the whole tensor otherwise.
    public func shard(_ tensor: Tensor<Float>, path: ParameterPath, core: Int) -> Tensor<Float> {
        guard path.isExpertWeight else { return tensor }
        return tensor.split(alongAxis: 0, into: dataCores)[dataCoordinate(of: core)]
            .split(alongAxis: path.expertHiddenAxis, into: modelCores)[modelCoordinate(of: core)]
    }

    /// Parameter `path` whole again from every core's part (in core order).
    public func gather(_ parts: [Tensor<Float>], path: ParameterPath) -> Tensor<Float> {
        guard path.isExpertWeight else { return parts[0] }
        return joined(parts, hiddenAxis: path.expertHiddenAxis)
    }

    /// Core `core`'s part of every parameter of `model`.
    public func shard(_ model: ModelParameters, core: Int) -> ModelParameters {
        model.map { shard($1, path: $0, core: core) }
    }

    /// The whole model again from every core's part (in core order).
    public func gather(_ parts: [ModelParameters]) -> ModelParameters {
        parts[0].map { path, _ in gather(parts.map { $0[path] }, path: path) }
    }

    /// Joins per-core parts split E-wise over `data` (tensor axis 0) and, when `hiddenAxis` is
    /// given, H-wise over `mdl` (parts equal along `mdl` otherwise: the first is taken).
    func joined(_ parts: [Tensor<Float>], hiddenAxis: Int?) -> Tensor<Float> {
        let byData = (0..<dataCores).map { i in
            let row = (0..<modelCores).map { j in parts[core(data: i, model: j)] }
            return hiddenAxis.map { Tensor.concatenated(row, alongAxis: $0) } ?? row[0]
        }
        return Tensor.concatenated(byData, alongAxis: 0)
    }

    /// The core at `data` coordinate i and `mdl` coordinate j.
    func core(data i: Int, model j: Int) -> Int {
        var coordinates = [Int](repeating: 0, count: mesh.shape.count)
        if let dataAxis { coordinates[dataAxis] = i }
        if let modelAxis { coordinates[modelAxis] = j }
        return mesh.core(at: coordinates)
    }

    /// Core `core`'s part of the Adafactor statistics of parameter `path`: split like the weight.
    /// For a factored expert weight the statistic along H is split and the other is shared.
    func shard(_ slot: AdafactorSlot, path: ParameterPath, core: Int) -> AdafactorSlot {
        guard path.isExpertWeight else { return slot }
        let (i, j) = (dataCoordinate(of: core), modelCoordinate(of: core))
        let experts = { (t: Tensor<Float>) in t.split(alongAxis: 0, into: self.dataCores)[i] }
        let hidden = { (t: Tensor<Float>) in experts(t).split(alongAxis: -1, into: self.modelCores)[j] }
        switch slot {
        case .full(let v):
            return .full(v: shard(v, path: path, core: core))
        case .factored(let vr, let vc):
            // wi [E, M, H]: vr [E, M] shared along mdl, vc [E, H] split; wo [E, H, M]: the reverse.
            return path.expertHiddenAxis == 2 ? .factored(vr: experts(vr), vc: hidden(vc)) : .factored(vr: hidden(vr), vc: experts(vc))
        }
    }

    /// The whole statistics of parameter `path` from every core's part (in core order).
    func gather(_ parts: [AdafactorSlot], path: ParameterPath) -> AdafactorSlot {
        guard path.isExpertWeight else { return parts[0] }
        // Every core's statistics of one weight are of one kind (the kind follows from its shape).
        let full = parts.compactMap { slot -> Tensor<Float>? in if case .full(let v) = slot { v } else { nil } }
        let factored = parts.compactMap { slot -> (vr: Tensor<Float>, vc: Tensor<Float>)? in
            if case .factored(let vr, let vc) = slot { (vr, vc) } else { nil }
        }
        precondition(full.isEmpty || factored.isEmpty, "gather: the cores' statistics of \(path) are of different kinds")
        if !full.isEmpty { return .full(v: gather(full, path: path)) }
        let rows = factored.map(\.vr), columns = factored.map(\.vc)
        let isInput = path.expertHiddenAxis == 2
        return .factored(vr: joined(rows, hiddenAxis: isInput ? nil : 1), vc: joined(columns, hiddenAxis: isInput ? 1 : nil))
    }
}
