// What every trainer offers, on one device (`Trainer`) or on a virtual mesh (`MeshTrainer`): a run
// that advances step by step on its batches, reports each step, evaluates on the validation rows
// and saves a checkpoint that either kind resumes.

/// A training run, on one device or a mesh: the same steps, schedule, skipped steps and checkpoints.
public protocol TrainingSession: AnyObject {
    /// The next step's 0-based index.
    var step: Int { get }
    /// Steps skipped because the loss or a gradient was not finite.
    var skippedSteps: Int { get }
    /// The run's settings.
    var options: TrainingOptions { get }
    /// The data.
    var dataset: TextDataset { get }
    /// The model's configuration.
    var configuration: ModelConfiguration { get }
    /// The checkpoint of the current state (resumable by either trainer).
    var checkpoint: TrainingCheckpoint { get }
    /// Runs step `step` on its batch and advances.
    func trainStep() throws -> StepReport
    /// Cross-entropy per real token on the validation rows, in nats.
    func validationLoss() throws -> Double
}
