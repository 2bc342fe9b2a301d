import NIOCore

/// When the drain closes which sockets of one event loop: the loop's `count` sockets split into slices spread
/// evenly over `window`, the first at once and the last at the window's end. One timer per loop fires the slices
/// in turn (never one per socket).
///
/// With `window` zero (or one socket) there is one slice, at once. Otherwise there are as many slices as sockets,
/// at most one per `minimumInterval` of the window (plus the one at its start), and each takes an even share:
/// slice `k` of `n` holds sockets `count*k/n ..< count*(k+1)/n`, at `window*k/(n-1)`.
struct DrainSchedule: Equatable, Sendable {
    /// Sockets `range` of the loop's list are closed `offset` after the drain begins.
    struct Slice: Equatable, Sendable {
        var offset: TimeAmount
        var range: Range<Int>
    }

    let slices: [Slice]

    init(count: Int, window: TimeAmount, minimumInterval: TimeAmount = .milliseconds(50)) {
        guard count > 0 else {
            slices = []
            return
        }
        let windowNanos = max(0, window.nanoseconds)
        let intervalNanos = max(1, minimumInterval.nanoseconds)
        let byTime = windowNanos / intervalNanos + 1
        let n = Int(min(Int64(count), max(1, byTime)))
        guard n > 1 else {
            slices = [Slice(offset: .zero, range: 0..<count)]
            return
        }
        slices = (0..<n).map { k in
            // Multiply in Double: window (ns) * k may overflow Int64 for long windows and many slices.
            let offset = Int64((Double(windowNanos) * Double(k) / Double(n - 1)).rounded())
            return Slice(offset: .nanoseconds(offset), range: (count * k / n)..<(count * (k + 1) / n))
        }
    }
}
