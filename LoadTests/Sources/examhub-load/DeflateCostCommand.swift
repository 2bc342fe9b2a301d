import ArgumentParser
import ExamHubDomain
import ExamHubWire
import Foundation
import NIOCore

/// `examhub-load deflate-cost`: what permessage-deflate costs the hub per message, on the frames this load tester
/// sends (autosave saves, telemetry) and on the events the hub sends back (`answer.saved` with the answer, proctor
/// events), with the hub's own settings. Timed in thread CPU time, so other processes on a shared machine do not
/// count; no sockets, so nothing else does either.
struct DeflateCostCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deflate-cost", abstract: "The hub's CPU per message for permessage-deflate, and the bytes saved.")

    @Option(help: "Messages per kind.") var messages = 20_000
    @Option(help: "The hub's window bits (EXAMHUB_COMPRESSION_WINDOW_BITS).") var windowBits = 12
    @Option(help: "The hub's zlib level for what it sends.") var level = 1

    func run() throws {
        let allocator = ByteBufferAllocator()
        print("messages per kind: \(messages); window \(windowBits) bits; hub level \(level); times are thread CPU")
        print("| traffic | direction | message bytes (mean) | on the wire | hub CPU µs per message |")
        print("|---|---|---|---|---|")
        for (name, frames) in [("autosave saves", Self.saves(messages)), ("telemetry frames", Self.telemetry(messages))] {
            // The client (a browser) keeps its context, zlib's default level; the hub inflates with its window.
            let client = try MessageCompressor(windowBits: windowBits, memoryLevel: 8, level: 6, contextTakeover: true)
            let compressed = frames.map { client.compress($0, allocator: allocator) ?? $0 }
            let inflater = try MessageDecompressor(windowBits: windowBits, contextTakeover: true)
            var first = true
            let cpu = try Self.cpuMicros {
                // Inflating with context takeover needs the stream from the start: a fresh inflater per run.
                let run = first ? inflater : try MessageDecompressor(windowBits: windowBits, contextTakeover: true)
                first = false
                for c in compressed { _ = try run.decompress(c, limit: 262_144, allocator: allocator) }
            }
            Self.row(name, "client -> hub: the hub inflates", frames, compressed, cpu / Double(frames.count), note: "")
        }
        let events = [("answer.saved events", Self.savedEvents(messages)), ("proctor events", Self.proctorEvents(messages))]
        for (name, frames) in events {
            let hub = try MessageCompressor(
                windowBits: windowBits, memoryLevel: min(8, max(1, windowBits - 7)), level: level, contextTakeover: false)
            var sent: [ByteBuffer] = []
            var compressedCount = 0
            let cpu = try Self.cpuMicros {
                sent.removeAll(keepingCapacity: true)
                compressedCount = 0
                for f in frames {
                    // As the hub does: only from 256 bytes, and only when it shrinks.
                    if f.readableBytes >= 256, let c = hub.compress(f, allocator: allocator) {
                        sent.append(c)
                        compressedCount += 1
                    } else {
                        sent.append(f)
                    }
                }
            }
            let share = compressedCount * 100 / max(1, frames.count)
            Self.row(
                name, "hub -> client: the hub deflates (once per event loop)", frames, sent, cpu / Double(frames.count),
                note: " (\(share)% of them are 256 B or more and compressed)")
        }
    }

    static func row(
        _ name: String, _ direction: String, _ frames: [ByteBuffer], _ wire: [ByteBuffer], _ micros: Double, note: String
    ) {
        let raw = frames.reduce(0) { $0 + $1.readableBytes }
        let onWire = wire.reduce(0) { $0 + $1.readableBytes }
        print(
            "| \(name) | \(direction) | \(raw / max(1, frames.count)) | "
                + String(format: "%.0f%%", Double(onWire) * 100 / Double(max(1, raw)))
                + " | " + String(format: "%.2f", micros) + "\(note) |")
    }

    /// Thread CPU time of `body` in microseconds (the best of three runs).
    static func cpuMicros(_ body: () throws -> Void) throws -> Double {
        var best = Double.infinity
        for _ in 0..<3 {
            var t0 = timespec()
            var t1 = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0)
            try body()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1)
            best = min(best, Double(t1.tv_sec - t0.tv_sec) * 1e6 + Double(t1.tv_nsec - t0.tv_nsec) / 1e3)
        }
        return best
    }

    static func buffer(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }

    /// `answer.save` frames exactly as `examhub-load autosave` writes them: a text growing by a word per save,
    /// restarting after about 2 KB.
    static func saves(_ n: Int) -> [ByteBuffer] {
        var text = ""
        return (1...n).map { id in
            if text.utf8.count > 2000 { text = "" }
            text += "word\(id % 97) "
            return buffer(
                #"{"op":"answer.save","id":\#(id),"attemptId":"a-7k2m9q4x","qid":"q\#(id % 10)","value":"\#(text)","opId":"17-\#(id)"}"#)
        }
    }

    /// `telemetry` frames as `examhub-load proctoring` writes them (5% paste, a face count every third, else focus).
    static func telemetry(_ n: Int) -> [ByteBuffer] {
        (1...n).map { id in
            let at = Timestamp.format(millis: 1_795_000_000_000 + Int64(id) * 1000)
            let event: String
            if id % 20 == 0 {
                event = #"{"kind":"clipboard.paste","at":"\#(at)"}"#
            } else if id % 3 == 0 {
                event = #"{"kind":"face.count","at":"\#(at)","data":{"n":1}}"#
            } else {
                event = #"{"kind":"\#(id % 2 == 0 ? "focus.gained" : "focus.lost")","at":"\#(at)"}"#
            }
            return buffer(#"{"op":"telemetry","id":\#(id),"attemptId":"a-7k2m9q4x","events":[\#(event)]}"#)
        }
    }

    /// The `answer.saved` events the hub publishes for those saves (the answer's value included).
    static func savedEvents(_ n: Int) -> [ByteBuffer] {
        var text = ""
        return (1...n).map { id in
            if text.utf8.count > 2000 { text = "" }
            text += "word\(id % 97) "
            var b = ByteBufferAllocator().buffer(capacity: 256)
            ServerFrame.writeEvent(
                into: &b, channel: "attempt:a-7k2m9q4x", seq: UInt64(id), type: "answer.saved",
                tsMillis: 1_795_000_000_000 + Int64(id),
                data: .object([
                    "qid": .string("q\(id % 10)"), "version": .int(Int64(id / 10 + 1)), "value": .string(text),
                    "opId": .string("17-\(id)"),
                ]))
            return b
        }
    }

    /// Events on `exam:<id>:proctor`: candidate state changes and flags with their evidence.
    static func proctorEvents(_ n: Int) -> [ByteBuffer] {
        (1...n).map { id in
            var b = ByteBufferAllocator().buffer(capacity: 256)
            let attempt = JSONValue.string("a-\(id % 200)-7k2m9q4x")
            let data: JSONValue
            let type: String
            if id % 4 == 0 {
                type = "flag.raised"
                data = .object([
                    "attemptId": attempt, "candidate": .string("c\(id % 200)"), "code": .string("paste"),
                    "severity": .string("warning"), "at": .string(Timestamp.format(millis: 1_795_000_000_000)),
                    "evidence": .object([
                        "events": .array([
                            .object([
                                "kind": .string("clipboard.paste"),
                                "at": .string(Timestamp.format(millis: 1_795_000_000_000 + Int64(id))),
                            ])
                        ])
                    ]),
                ])
            } else {
                type = "candidate.state"
                data = .object([
                    "attemptId": attempt, "candidate": .string("c\(id % 200)"), "state": .string("in_progress"),
                    "risk": .int(Int64(id % 40)), "connected": .bool(true),
                ])
            }
            ServerFrame.writeEvent(
                into: &b, channel: "exam:e-room-\(id % 10):proctor", seq: UInt64(id), type: type,
                tsMillis: 1_795_000_000_000 + Int64(id), data: data)
            return b
        }
    }
}
