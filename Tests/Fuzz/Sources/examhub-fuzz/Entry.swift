#if canImport(Glibc)
import Glibc
#endif

#if FUZZING
/// libFuzzer's entry point (built by Tests/Fuzz/run.sh with `-sanitize=fuzzer,address`); the target is chosen by
/// `EXAMHUB_FUZZ_TARGET`.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let target = getenv("EXAMHUB_FUZZ_TARGET").map { String(cString: $0) } ?? "envelope"
    FuzzTargets.run(target, UnsafeRawBufferPointer(start: data, count: size))
    return 0
}

@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>, Int) -> CInt
) -> CInt

/// SwiftPM links an executable target's entry point under this name; it hands over to libFuzzer's driver.
@_cdecl("examhub_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var values = argv
    return LLVMFuzzerRunDriver(&count, &values) { data, size in fuzzOneInput(data, size) }
}
#else
import Foundation

/// Without libFuzzer: replays files through a target (`examhub-fuzz TARGET FILE...`), as the regression tests do
/// with every input a fuzzing run ever crashed on.
@main
struct Replay {
    static func main() {
        let args = CommandLine.arguments.dropFirst()
        guard let target = args.first, FuzzTargets.names.contains(target) else {
            FileHandle.standardError.write(Data("usage: examhub-fuzz \(FuzzTargets.names.joined(separator: "|")) FILE...\n".utf8))
            exit(2)
        }
        var count = 0
        for path in args.dropFirst() {
            guard let data = FileManager.default.contents(atPath: path) else {
                FileHandle.standardError.write(Data("cannot read \(path)\n".utf8))
                exit(2)
            }
            data.withUnsafeBytes { FuzzTargets.run(target, $0) }
            count += 1
        }
        print("\(target): \(count) inputs replayed, no crash")
    }
}
#endif
