// The library's error for input that does not fit: a model, checkpoint, batch, file or option,
// described in one line that names the problem (what the command line prints before exiting 2).

/// A model, checkpoint or input that does not fit: one line saying what and why.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    /// The message.
    public let description: String
    /// An error with `message`.
    public init(_ message: String) { description = message }
}
