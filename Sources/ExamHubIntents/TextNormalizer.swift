import Foundation

/// Turns raw chat text into normalized tokens: lowercased, diacritics folded, contractions expanded,
/// punctuation removed. Pure and allocation-light; every input (empty, huge, odd unicode) gives a result.
///
/// ```swift
/// TextNormalizer().tokens("What's the TIME left?!")   // ["what", "is", "the", "time", "left"]
/// ```
public struct TextNormalizer: Sendable {
    /// Text beyond this many characters is ignored (the assistant answers short questions; this bounds the work
    /// done per message whatever a client sends). Default 2,000.
    public var maxCharacters: Int

    /// Creates a normalizer that reads at most `maxCharacters` characters of each text.
    public init(maxCharacters: Int = 2_000) {
        self.maxCharacters = max(1, maxCharacters)
    }

    /// The normalized tokens of `text`: lowercase letters and digits only; contractions expanded
    /// ("what's" -> "what is", "can't" -> "can not"); apostrophes inside words dropped.
    public func tokens(_ text: String) -> [String] {
        var tokens: [String] = []
        var current = String.UnicodeScalarView()

        func flush() {
            guard !current.isEmpty else { return }
            Self.appendExpanded(String(current), to: &tokens)
            current = String.UnicodeScalarView()
        }

        let folded = String(text.prefix(maxCharacters))
            .folding(options: [.caseInsensitive, .diacriticInsensitive, .widthInsensitive], locale: nil).lowercased()
        for scalar in folded.unicodeScalars {
            if scalar.value >= 0x80, scalar.properties.generalCategory == .nonspacingMark { continue }
            if Self.isWordScalar(scalar) {
                if scalar.value >= 0x80, let base = Self.latinBase[scalar.value] {
                    current.append(contentsOf: base.unicodeScalars)
                } else {
                    current.append(scalar)
                }
            } else if Self.isApostrophe(scalar), !current.isEmpty {
                current.append("'")
            } else {
                flush()
            }
        }
        flush()
        return tokens
    }

    /// The normalized text: ``tokens(_:)`` joined by single spaces.
    public func normalize(_ text: String) -> String {
        tokens(text).joined(separator: " ")
    }

    /// A light suffix-stripping stemmer for English (plural, -ing, -ed), enough to match "saves", "saved" and
    /// "saving" with "save" in word features. Numbers are returned unchanged.
    public static func stem(_ token: String) -> String {
        let utf8 = token.utf8
        let n = utf8.count
        guard n > 3, let last = utf8.last, !(48...57).contains(last) else { return token }
        if token.hasSuffix("ies"), n > 4 { return String(token.dropLast(3)) + "y" }
        if token.hasSuffix("ing"), n > 5 { return stripDoubled(String(token.dropLast(3))) }
        if token.hasSuffix("ed"), n > 4, !token.hasSuffix("eed") { return stripDoubled(String(token.dropLast(2))) }
        if token.hasSuffix("es"), n > 4,
            token.hasSuffix("sses") || token.hasSuffix("ches") || token.hasSuffix("shes")
                || token.hasSuffix("xes")
        {
            return String(token.dropLast(2))
        }
        if last == UInt8(ascii: "s"), !token.hasSuffix("ss"), !token.hasSuffix("us"), !token.hasSuffix("is") {
            return String(token.dropLast())
        }
        return token
    }

    // MARK: - Private

    private static func stripDoubled(_ stem: String) -> String {
        let scalars = Array(stem.unicodeScalars)
        if scalars.count >= 3, scalars[scalars.count - 1] == scalars[scalars.count - 2],
            !"lsz".unicodeScalars.contains(scalars[scalars.count - 1])
        {
            return String(stem.dropLast())
        }
        return stem
    }

    private static func isWordScalar(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x30...0x39, 0x61...0x7A: return true
        case 0..<0x80: return false
        default: return scalar.properties.isAlphabetic || scalar.properties.numericType != nil
        }
    }

    private static func isApostrophe(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "'" || scalar == "\u{2019}" || scalar == "\u{2018}" || scalar == "`"
    }

    private static let irregular: [String: [String]] = [
        "can't": ["can", "not"], "cant": ["can", "not"], "won't": ["will", "not"], "wont": ["will", "not"],
        "shan't": ["shall", "not"], "ain't": ["is", "not"], "i'm": ["i", "am"], "im": ["i", "am"],
        "let's": ["let", "us"], "dont": ["do", "not"], "doesnt": ["does", "not"], "didnt": ["did", "not"],
        "isnt": ["is", "not"], "whats": ["what", "is"], "wheres": ["where", "is"], "hows": ["how", "is"],
        "ive": ["i", "have"], "youre": ["you", "are"], "thats": ["that", "is"], "wanna": ["want", "to"],
        "gonna": ["going", "to"], "gotta": ["got", "to"], "pls": ["please"], "plz": ["please"], "u": ["you"],
        "ur": ["your"], "thx": ["thanks"], "mins": ["minutes"], "min": ["minute"], "secs": ["seconds"],
        "hrs": ["hours"], "hr": ["hour"],
    ]

    private static let suffixes: [(String, String)] = [
        ("n't", "not"), ("'re", "are"), ("'ve", "have"), ("'ll", "will"), ("'d", "would"), ("'m", "am"),
        ("'s", "is"),
    ]

    private static let possessiveHeads: Set<String> = [
        "what", "where", "how", "who", "that", "it", "there", "here", "when", "why", "he", "she", "this",
    ]

    private static func appendExpanded(_ raw: String, to tokens: inout [String]) {
        let word = raw.trimmingApostrophes()
        guard !word.isEmpty else { return }
        if let parts = irregular[word] {
            tokens.append(contentsOf: parts)
            return
        }
        if word.contains("'") {
            for (suffix, expansion) in suffixes where word.hasSuffix(suffix) {
                let head = String(word.dropLast(suffix.count))
                guard !head.isEmpty else { break }
                if suffix == "'s", !possessiveHeads.contains(head) {
                    tokens.append(head)  // possessive: "exam's" -> "exam"
                    return
                }
                tokens.append(head)
                tokens.append(expansion)
                return
            }
            tokens.append(word.replacingApostrophes())
            return
        }
        tokens.append(word)
    }

    private static let latinBase: [UInt32: String] = [
        0xDF: "ss", 0xE6: "ae", 0xF8: "o", 0x153: "oe", 0x131: "i", 0x142: "l", 0xF0: "d", 0xFE: "th",
    ]
}

extension String {
    fileprivate func trimmingApostrophes() -> String {
        var scalars = Substring(self)
        while scalars.first == "'" { scalars = scalars.dropFirst() }
        while scalars.last == "'" { scalars = scalars.dropLast() }
        return String(scalars)
    }

    fileprivate func replacingApostrophes() -> String {
        String(self.filter { $0 != "'" })
    }
}
