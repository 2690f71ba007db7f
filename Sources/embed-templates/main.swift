// The entry point of an ordinary build: main.swift is top-level code, so this global's
// initializer runs at start. tools/fuzz builds the package with -sanitize=fuzzer, which SwiftPM
// applies to this host tool too (and with it -parse-as-library and libFuzzer's `main`): there the
// line is a lazy global that never runs, and libFuzzer's `main` runs the tool through
// LLVMFuzzerInitialize (FuzzerEntry.swift) instead.
let ran: Void = EmbedTemplatesTool.run(CommandLine.arguments)
