// The `glam` executable: forwards to GLaMCLI and exits with its status.

import Foundation
import GLaMCLI

let status = CommandLineTool.run(
    Array(CommandLine.arguments.dropFirst()),
    output: Output(
        standard: { FileHandle.standardOutput.write(Data($0.utf8)) },
        error: { FileHandle.standardError.write(Data($0.utf8)) }))
exit(status)
