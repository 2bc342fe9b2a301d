import ExamHubDomain
import Testing

@Suite struct AttemptClockTests {
    func code(_ body: () throws(HubError) -> Void) -> HubError.Code? {
        do { try body(); return nil } catch { return error.code }
    }

    @Test func startSetsTheDeadline() {
        let c = AttemptClock.start(at: 1000, durationSec: 60, graceSec: 5)
        #expect(c.state == .inProgress)
        #expect(c.deadlineMillis == 61_000)
        #expect(c.graceMillis == 5000)
        #expect(!c.isTimeUp(at: 60_999))
        #expect(c.isTimeUp(at: 61_000))
    }

    @Test func savesAreRefusedAfterDeadlinePlusGrace() {
        let c = AttemptClock.start(at: 0, durationSec: 10, graceSec: 2)
        #expect(code { () throws(HubError) in try c.checkSave(at: 9_999) } == nil)
        #expect(code { () throws(HubError) in try c.checkSave(at: 12_000) } == nil)
        #expect(code { () throws(HubError) in try c.checkSave(at: 12_001) } == .attemptClosed)
    }

    @Test func lateSavesWithinGraceAfterTimeUpSubmit() throws {
        var c = AttemptClock.start(at: 0, durationSec: 10, graceSec: 2)
        try c.submit(at: 10_000, reason: .timeUp)
        #expect(code { () throws(HubError) in try c.checkSave(at: 11_000) } == nil)
        #expect(code { () throws(HubError) in try c.checkSave(at: 12_001) } == .attemptClosed)
        var d = AttemptClock.start(at: 0, durationSec: 10, graceSec: 2)
        try d.submit(at: 5_000, reason: .candidate)
        #expect(code { () throws(HubError) in try d.checkSave(at: 5_001) } == .attemptClosed)
    }

    @Test func pauseStopsTheClockAndResumeMovesTheDeadline() throws {
        var c = AttemptClock.start(at: 0, durationSec: 60, graceSec: 0)
        try c.pause(at: 10_000)
        #expect(c.state == .paused)
        #expect(!c.isTimeUp(at: 100_000))
        #expect(code { () throws(HubError) in try c.checkSave(at: 20_000) } == .attemptPaused)
        try c.resume(at: 40_000)
        #expect(c.state == .inProgress)
        #expect(c.deadlineMillis == 90_000)
    }

    @Test func extendMovesTheDeadline() throws {
        var c = AttemptClock.start(at: 0, durationSec: 60, graceSec: 0)
        try c.extend(minutes: 5)
        #expect(c.deadlineMillis == 360_000)
        #expect(code { () throws(HubError) in var x = c; try x.extend(minutes: 0) } == .badRequest)
        #expect(code { () throws(HubError) in var x = c; try x.extend(minutes: 1441) } == .badRequest)
    }

    /// Every transition from every state: what is legal changes the state; what is not is refused with the right
    /// code and changes nothing.
    @Test func transitionTable() {
        enum Op: CaseIterable { case submitCandidate, submitTimeUp, submitProctor, pause, resume, extend, terminate }
        enum Outcome: Equatable {
            case success(AttemptState)
            case failure(HubError.Code)
        }
        let expected: [AttemptState: [Op: Outcome]] = [
            .inProgress: [
                .submitCandidate: .success(.submitted), .submitTimeUp: .success(.submitted),
                .submitProctor: .success(.submitted), .pause: .success(.paused), .resume: .failure(.conflict),
                .extend: .success(.inProgress), .terminate: .success(.terminated),
            ],
            .paused: [
                .submitCandidate: .failure(.attemptPaused), .submitTimeUp: .success(.submitted),
                .submitProctor: .success(.submitted), .pause: .failure(.conflict), .resume: .success(.inProgress),
                .extend: .success(.paused), .terminate: .success(.terminated),
            ],
            .submitted: Dictionary(uniqueKeysWithValues: Op.allCases.map { ($0, Outcome.failure(.attemptClosed)) }),
            .terminated: Dictionary(uniqueKeysWithValues: Op.allCases.map { ($0, Outcome.failure(.attemptClosed)) }),
        ]
        for state in AttemptState.allCases {
            for op in Op.allCases {
                var clock = AttemptClock(
                    state: state, deadlineMillis: 100_000, graceMillis: 0,
                    pausedAtMillis: state == .paused ? 10_000 : nil,
                    reason: state == .submitted ? .candidate : nil, closedAtMillis: state.isClosed ? 5_000 : nil)
                let before = clock
                let result: Outcome
                do throws(HubError) {
                    switch op {
                    case .submitCandidate: try clock.submit(at: 20_000, reason: .candidate)
                    case .submitTimeUp: try clock.submit(at: 20_000, reason: .timeUp)
                    case .submitProctor: try clock.submit(at: 20_000, reason: .proctor)
                    case .pause: try clock.pause(at: 20_000)
                    case .resume: try clock.resume(at: 20_000)
                    case .extend: try clock.extend(minutes: 1)
                    case .terminate: try clock.terminate(at: 20_000)
                    }
                    result = .success(clock.state)
                } catch {
                    result = .failure(error.code)
                    #expect(clock == before, "a refused \(op) changed the clock in \(state)")
                }
                #expect(result == expected[state]?[op], "\(op) in \(state)")
            }
        }
    }
}

@Suite struct AnswerRulesTests {
    let single = ExamDefinition.Question(id: "q1", type: .single, prompt: "?", options: ["a", "b"])
    let multi = ExamDefinition.Question(id: "q2", type: .multi, prompt: "?", options: ["a", "b", "c"])
    let text = ExamDefinition.Question(id: "q3", type: .text, prompt: "?")
    let number = ExamDefinition.Question(id: "q4", type: .number, prompt: "?")

    func ok(_ v: JSONValue, _ q: ExamDefinition.Question, bytes: Int = 10) -> Bool {
        do { try AnswerRules.validate(v, for: q, encodedBytes: bytes); return true } catch { return false }
    }

    @Test func valuesByType() {
        #expect(ok(.string("a"), single))
        #expect(!ok(.string("z"), single))
        #expect(!ok(.array([.string("a")]), single))
        #expect(ok(.array([.string("a"), .string("c")]), multi))
        #expect(ok(.array([]), multi))
        #expect(!ok(.array([.string("a"), .string("a")]), multi))
        #expect(!ok(.array([.int(1)]), multi))
        #expect(ok(.string("free text"), text))
        #expect(!ok(.int(3), text))
        #expect(ok(.int(3), number))
        #expect(ok(.double(2.5), number))
        #expect(!ok(.string("3"), number))
        for q in [single, multi, text, number] { #expect(ok(.null, q)) }
        #expect(!ok(.string("x"), text, bytes: AnswerRules.maxValueBytes + 1))
    }

    @Test func versions() {
        #expect(AnswerRules.decide(currentVersion: 0, baseVersion: nil) == .write(version: 1))
        #expect(AnswerRules.decide(currentVersion: 3, baseVersion: 3) == .write(version: 4))
        #expect(AnswerRules.decide(currentVersion: 3, baseVersion: 2) == .conflict(currentVersion: 3))
        #expect(AnswerRules.decide(currentVersion: 0, baseVersion: 1) == .conflict(currentVersion: 0))
    }
}

@Suite struct ExamDefinitionTests {
    @Test func validDefinitionRoundTrips() throws {
        let json: JSONValue = .object([
            "id": .string("e1"), "title": .string("Maths"), "durationSec": .int(3600), "graceSec": .int(30),
            "questions": .array([
                .object(["id": .string("q1"), "type": .string("single"), "prompt": .string("2+2?"),
                         "options": .array([.string("3"), .string("4")])]),
                .object(["id": .string("q2"), "type": .string("text"), "prompt": .string("Why?")]),
            ]),
            "proctoring": .object(["profile": .string("default")]),
        ])
        let exam = try ExamDefinition(json: json)
        #expect(exam.questions.count == 2)
        #expect(exam.graceSec == 30)
        #expect(try ExamDefinition(json: exam.json) == exam)
    }

    @Test(arguments: [
        (JSONValue.string("x"), "object"),
        (.object(["title": .string("t"), "durationSec": .int(1), "questions": .array([])]), "id"),
        (.object(["id": .string("bad id"), "title": .string("t"), "durationSec": .int(1), "questions": .array([])]), "id"),
        (.object(["id": .string("e"), "title": .string("t"), "durationSec": .int(0), "questions": .array([])]), "durationSec"),
        (.object(["id": .string("e"), "title": .string("t"), "durationSec": .int(60), "questions": .array([])]), "questions"),
        (.object(["id": .string("e"), "title": .string("t"), "durationSec": .int(60),
                  "questions": .array([.object(["id": .string("q"), "type": .string("essay"), "prompt": .string("p")])])]),
         "questions[0].type"),
        (.object(["id": .string("e"), "title": .string("t"), "durationSec": .int(60),
                  "questions": .array([.object(["id": .string("q"), "type": .string("single"), "prompt": .string("p")])])]),
         "questions[0].options"),
        (.object(["id": .string("e"), "title": .string("t"), "durationSec": .int(60),
                  "questions": .array([
                    .object(["id": .string("q"), "type": .string("text"), "prompt": .string("p")]),
                    .object(["id": .string("q"), "type": .string("text"), "prompt": .string("p")]),
                  ])]), "questions[1].id"),
    ])
    func invalidDefinitionsNameTheField(json: JSONValue, field: String) {
        do {
            _ = try ExamDefinition(json: json)
            Issue.record("accepted an invalid definition")
        } catch {
            #expect(error.code == .badRequest)
            #expect(error.message.contains(field), "\(error.message)")
        }
    }
}

