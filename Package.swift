// swift-tools-version: 6.0
//
// GLaM in Swift: a dependency-free reference implementation of GLaM (Du et al. 2021).
//
// No package dependencies and no unsafe flags. The fast build passes the CPU level on the
// command line instead (see README.md):
//     swift build -c release -Xswiftc -target-cpu -Xswiftc native -Xswiftc -DGLAM_FMA
import PackageDescription

let package = Package(
    name: "GLaM",
    // Mutex and Atomic (the Synchronization module) need these releases on Apple platforms.
    platforms: [.macOS(.v15), .iOS(.v18), .tvOS(.v18), .watchOS(.v11), .visionOS(.v2)],
    products: [
        .library(name: "GLaM", targets: ["GLaM"]),
        .executable(name: "glam", targets: ["GLaMCommand"]),
    ],
    targets: [
        // The library: tensors, kernels, autograd, file formats, and the model.
        .target(
            name: "GLaM",
            // Each folder's README.md says what the folder is and which folders it may use
            // (checked by Scripts/ci/check_layers.py).
            exclude: [
                "Support", "Kernels", "Tensor", "Autograd", "IO", "Data", "MoE", "Model", "Evaluation",
                "Training", "Mesh", "Verification",
            ].map { "\($0)/README.md" }),
        // The `glam` command line's subcommands (a library so tests can run them in-process).
        .target(name: "GLaMCLI", dependencies: ["GLaM"]),
        // The `glam` executable: a thin wrapper around GLaMCLI.
        .executableTarget(name: "GLaMCommand", dependencies: ["GLaMCLI"]),
        .testTarget(name: "GLaMTests", dependencies: ["GLaM", "GLaMCLI"]),
        // Examples: `swift run -c release use-the-library`, `train-on-a-mesh` and `route-a-batch`.
        .executableTarget(name: "train-on-a-mesh", dependencies: ["GLaM"], path: "Examples/TrainOnAMesh"),
        .executableTarget(name: "route-a-batch", dependencies: ["GLaM"], path: "Examples/RouteABatch"),
        .executableTarget(name: "use-the-library", dependencies: ["GLaM"], path: "Examples/UseTheLibrary"),
    ],
    swiftLanguageModes: [.v6]
)
