import Foundation

/// A value pulled out of the user's text.
public enum EntityValue: Sendable, Hashable, CustomStringConvertible {
    /// A list entity's canonical value.
    case list(String)
    /// A number.
    case number(Double)
    /// A duration in seconds.
    case duration(seconds: Int)
    /// A calendar day.
    case date(CalendarDate)

    /// The text used when the value fills a response slot: "3", "10 minutes", "2026-12-01".
    public var description: String {
        switch self {
        case .list(let value): return value
        case .number(let value):
            return value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value)
        case .duration(let seconds): return Self.describe(seconds: seconds)
        case .date(let date): return date.description
        }
    }

    private static func describe(seconds: Int) -> String {
        var parts: [String] = []
        var rest = seconds
        for (unit, size) in [("day", 86_400), ("hour", 3_600), ("minute", 60), ("second", 1)] where rest >= size {
            let count = rest / size
            rest %= size
            parts.append("\(count) \(unit)\(count == 1 ? "" : "s")")
        }
        return parts.isEmpty ? "0 seconds" : parts.joined(separator: " ")
    }
}

/// A day in the proleptic Gregorian calendar (no time, no zone).
public struct CalendarDate: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The year.
    public var year: Int
    /// The month, 1-12.
    public var month: Int
    /// The day of the month, 1-31.
    public var day: Int

    /// Creates a date; nil when the day does not exist.
    public init?(year: Int, month: Int, day: Int) {
        guard (1...9999).contains(year), (1...12).contains(month), day >= 1,
            day <= Self.daysIn(month: month, year: year)
        else { return nil }
        self.year = year
        self.month = month
        self.day = day
    }

    /// The UTC day of `date`.
    public init(_ date: Date) {
        let days = Int((date.timeIntervalSince1970 / 86_400).rounded(.down))
        self = Self(daysSinceEpoch: days)
    }

    /// ISO 8601: `2026-12-01`.
    public var description: String {
        func pad(_ v: Int, _ n: Int) -> String {
            String(repeating: "0", count: max(0, n - String(v).count)) + String(v)
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    /// Days since 1970-01-01.
    public var daysSinceEpoch: Int {
        // Howard Hinnant's days_from_civil.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The date `days` days later (earlier when negative).
    public func adding(days: Int) -> CalendarDate { Self(daysSinceEpoch: daysSinceEpoch + days) }

    /// 0 = Monday ... 6 = Sunday.
    public var weekday: Int { ((daysSinceEpoch % 7) + 7 + 3) % 7 }

    /// Orders by day.
    public static func < (lhs: CalendarDate, rhs: CalendarDate) -> Bool { lhs.daysSinceEpoch < rhs.daysSinceEpoch }

    private init(daysSinceEpoch: Int) {
        let z = daysSinceEpoch + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        year = yoe + era * 400 + (m <= 2 ? 1 : 0)
        month = m
        day = d
    }

    private static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// A value found in the text and the token span it covers.
struct EntityMention: Sendable, Hashable {
    var value: EntityValue
    var range: Range<Int>
}

/// Finds numbers, durations, dates and list values in normalized tokens.
struct EntityExtractor: Sendable {
    /// All built-in mentions (durations and dates first; numbers only outside their spans), in text order.
    static func builtIns(in tokens: [String], today: CalendarDate) -> (
        numbers: [EntityMention], durations: [EntityMention], dates: [EntityMention]
    ) {
        let durations = self.durations(in: tokens)
        var covered = Set(durations.flatMap { Array($0.range) })
        let dates = self.dates(in: tokens, today: today, excluding: covered)
        covered.formUnion(dates.flatMap { Array($0.range) })
        var numbers: [EntityMention] = []
        for (index, token) in tokens.enumerated() where !covered.contains(index) {
            // "one" is mostly a pronoun ("the other one"); it is a number only after a word like "question".
            if token == "one", index == 0 || !numberCues.contains(tokens[index - 1]) { continue }
            if let value = number(token) {
                numbers.append(EntityMention(value: .number(value), range: index..<index + 1))
            }
        }
        return (numbers, durations, dates)
    }

    /// Mentions of a list entity's values, longest phrase first, without overlaps, in text order.
    static func listMentions(of values: [EntityListValue], in tokens: [String], normalizer: TextNormalizer)
        -> [EntityMention]
    {
        var patterns: [([String], String)] = []
        for value in values {
            for surface in [value.value] + value.synonyms {
                let words = normalizer.tokens(surface)
                if !words.isEmpty { patterns.append((words, value.value)) }
            }
        }
        patterns.sort { $0.0.count > $1.0.count }
        var covered = Set<Int>()
        var found: [EntityMention] = []
        for (words, value) in patterns where words.count <= tokens.count {
            for start in 0...(tokens.count - words.count) {
                let range = start..<start + words.count
                guard !range.contains(where: covered.contains) else { continue }
                if Array(tokens[range]) == words
                    || zip(tokens[range], words).allSatisfy({
                        TextNormalizer.stem($0) == TextNormalizer.stem($1)
                    })
                {
                    found.append(EntityMention(value: .list(value), range: range))
                    covered.formUnion(range)
                }
            }
        }
        return found.sorted { $0.range.lowerBound < $1.range.lowerBound }
    }

    // MARK: - Numbers

    private static let numberCues: Set<String> = [
        "question", "number", "no", "q", "item", "part", "section", "page", "task",
    ]

    private static let units: [String: Double] = [
        "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
        "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
        "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20, "thirty": 30, "forty": 40,
        "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100,
        "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7, "eighth": 8,
        "ninth": 9, "tenth": 10, "eleventh": 11, "twelfth": 12, "twentieth": 20,
    ]

    static func number(_ token: String) -> Double? {
        if let value = units[token] { return value }
        var digits = Substring(token)
        for suffix in ["st", "nd", "rd", "th"] where digits.hasSuffix(suffix) {
            digits = digits.dropLast(2)
            break
        }
        guard !digits.isEmpty, digits.count <= 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            return nil
        }
        return Double(String(digits))
    }

    // MARK: - Durations

    private static let unitSeconds: [String: Int] = [
        "second": 1, "seconds": 1, "sec": 1, "secs": 1, "s": 1, "minute": 60, "minutes": 60, "min": 60,
        "mins": 60, "m": 60, "hour": 3_600, "hours": 3_600, "hr": 3_600, "hrs": 3_600, "h": 3_600,
        "day": 86_400, "days": 86_400,
    ]

    private static func durations(in tokens: [String]) -> [EntityMention] {
        var found: [EntityMention] = []
        var index = 0
        while index < tokens.count {
            var total = 0
            var end = index
            var cursor = index
            while cursor < tokens.count {
                if cursor > index, tokens[cursor] == "and", cursor + 1 < tokens.count { cursor += 1 }
                guard let (seconds, next) = durationPart(tokens, at: cursor) else { break }
                total += seconds
                end = next
                cursor = next
            }
            if end > index {
                found.append(EntityMention(value: .duration(seconds: total), range: index..<end))
                index = end
            } else {
                index += 1
            }
        }
        return found
    }

    /// "10 minutes", "an hour", "half an hour", "1 and a half hours" is out of scope (counts the "1 hour").
    private static func durationPart(_ tokens: [String], at index: Int) -> (Int, Int)? {
        if tokens[index] == "half", index + 2 < tokens.count, ["a", "an"].contains(tokens[index + 1]),
            let unit = unitSeconds[tokens[index + 2]]
        {
            return (unit / 2, index + 3)
        }
        // "10 more minutes", "5 extra mins"
        let unitAt =
            index + 2 < tokens.count && ["more", "extra", "additional"].contains(tokens[index + 1])
            ? index + 2 : index + 1
        guard unitAt < tokens.count, let unit = unitSeconds[tokens[unitAt]] else { return nil }
        let amount: Double
        if tokens[index] == "a" || tokens[index] == "an" {
            guard unit >= 60 else { return nil }  // "a s" is not a duration
            amount = 1
        } else if let value = number(tokens[index]), !["first", "second", "third"].contains(tokens[index]) {
            amount = value
        } else {
            return nil
        }
        return (Int(min(amount, 1e9)) * unit, unitAt + 1)
    }

    // MARK: - Dates

    private static let weekdays = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    private static let months: [String: Int] = [
        "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "mar": 3, "april": 4, "apr": 4, "may": 5,
        "june": 6, "jun": 6, "july": 7, "jul": 7, "august": 8, "aug": 8, "september": 9, "sep": 9, "sept": 9,
        "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
    ]

    private static func dates(in tokens: [String], today: CalendarDate, excluding covered: Set<Int>)
        -> [EntityMention]
    {
        var found: [EntityMention] = []
        var index = 0
        func free(_ range: Range<Int>) -> Bool {
            range.upperBound <= tokens.count && !range.contains(where: covered.contains)
        }
        while index < tokens.count {
            if let (date, end) = date(tokens, at: index, today: today), free(index..<end) {
                found.append(EntityMention(value: .date(date), range: index..<end))
                index = end
            } else {
                index += 1
            }
        }
        return found
    }

    private static func date(_ tokens: [String], at index: Int, today: CalendarDate) -> (CalendarDate, Int)? {
        let token = tokens[index]
        let next = index + 1 < tokens.count ? tokens[index + 1] : nil
        switch token {
        case "today", "tonight": return (today, index + 1)
        case "yesterday": return (today.adding(days: -1), index + 1)
        case "tomorrow", "tmrw", "tomorow": return (today.adding(days: 1), index + 1)
        case "day" where next == "after" && index + 2 < tokens.count && tokens[index + 2] == "tomorrow":
            return (today.adding(days: 2), index + 3)
        case "next" where next.flatMap(weekdays.firstIndex(of:)) != nil:
            guard let next, let target = weekdays.firstIndex(of: next) else { return nil }
            let ahead = (target - today.weekday + 7) % 7
            return (today.adding(days: ahead == 0 ? 7 : ahead), index + 2)
        default: break
        }
        if let target = weekdays.firstIndex(of: token) {
            let ahead = (target - today.weekday + 7) % 7
            return (today.adding(days: ahead == 0 ? 7 : ahead), index + 1)
        }
        // 2026-12-01 (tokenized as 2026 12 01)
        if token.count == 4, let year = Int(token), index + 2 < tokens.count, let month = Int(tokens[index + 1]),
            let day = Int(tokens[index + 2]), let date = CalendarDate(year: year, month: month, day: day)
        {
            return (date, index + 3)
        }
        // december 1 [2026] / dec 1st
        if let month = months[token], let next, let dayValue = number(next), dayValue >= 1, dayValue <= 31 {
            return resolve(month: month, day: Int(dayValue), tokens: tokens, yearAt: index + 2, today: today)
        }
        // 1 december [2026] / 1st of december
        if let dayValue = number(token), dayValue >= 1, dayValue <= 31, token.first?.isNumber == true {
            var cursor = index + 1
            if cursor < tokens.count, tokens[cursor] == "of" { cursor += 1 }
            if cursor < tokens.count, let month = months[tokens[cursor]] {
                return resolve(month: month, day: Int(dayValue), tokens: tokens, yearAt: cursor + 1, today: today)
            }
        }
        return nil
    }

    private static func resolve(month: Int, day: Int, tokens: [String], yearAt: Int, today: CalendarDate)
        -> (CalendarDate, Int)?
    {
        if yearAt < tokens.count, tokens[yearAt].count == 4, let year = Int(tokens[yearAt]),
            let date = CalendarDate(year: year, month: month, day: day)
        {
            return (date, yearAt + 1)
        }
        // No year: the next such day from today.
        if let date = CalendarDate(year: today.year, month: month, day: day), date >= today { return (date, yearAt) }
        if let date = CalendarDate(year: today.year + 1, month: month, day: day) { return (date, yearAt) }
        return nil
    }
}
