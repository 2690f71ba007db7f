import Foundation

// Only for a build with -sanitize=fuzzer (see main.swift), where libFuzzer supplies `main`:
// that `main` calls LLVMFuzzerInitialize first, before it reads any argument, so the tool runs
// there and exits and no fuzzing starts. An ordinary build never calls either function.

/// libFuzzer's start-up hook: runs the tool on the command line and exits.
@_cdecl("LLVMFuzzerInitialize")
func fuzzerInitialize(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>
) -> Int32 {
    let arguments = (0..<Int(argc.pointee)).map { String(cString: argv.pointee![$0]!) }
    EmbedTemplatesTool.run(arguments)
    exit(0)
}

/// Required by libFuzzer's `main`; never called, as the tool has exited by then.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { 0 }
