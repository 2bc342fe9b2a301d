import Foundation
import Logging
import ServiceLifecycle

#if canImport(Glibc)
import Glibc
#endif

/// Every `intervalSeconds`, hands the heap memory that glibc keeps after it was freed back to the system
/// (`malloc_trim(0)`: the free tops of every arena, and `madvise` of whole free pages inside them).
///
/// Why: glibc gives each thread that allocates an arena of its own (up to 8 per core) and keeps freed memory there
/// for reuse. The hub frees on one thread what another allocated (an answer saved on the store's thread, kept in a
/// channel's history on an event loop, swept later), so under steady churn the arenas' free space grows while the
/// bytes in use stay flat, and RSS creeps up. A trim walks each arena under its lock, which took 1-5 ms on a hub
/// holding 100 MB; once a minute that is noise. Does nothing where glibc is not the allocator.
struct MemoryTrimService: Service {
    let intervalSeconds: Double
    let logger: Logger

    func run() async throws {
        #if canImport(Glibc)
        // malloc.h is not in Swift's Glibc module: look the function up (absent with another allocator).
        guard let symbol = dlsym(nil, "malloc_trim") else { return }
        typealias MallocTrim = @convention(c) (Int) -> Int32
        let mallocTrim = unsafeBitCast(symbol, to: MallocTrim.self)
        try? await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(Int64(intervalSeconds * 1000)))
                let before = Self.residentBytes()
                let start = ContinuousClock.now
                let released = mallocTrim(0) == 1
                let took = ContinuousClock.now - start
                let after = Self.residentBytes()
                logger.debug(
                    "returned freed heap memory to the system",
                    metadata: [
                        "examhub.released": "\(released)",
                        "examhub.rss_before_bytes": "\(before)", "examhub.rss_after_bytes": "\(after)",
                        "examhub.trim_ms": "\(Double(took.components.seconds) * 1000 + Double(took.components.attoseconds) / 1e15)",
                    ])
            }
        }
        #endif
    }

    /// The process's resident set size, from `/proc/self/statm` (0 where that is not readable).
    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
