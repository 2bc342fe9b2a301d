import ExamHubDomain
import NIOHTTP1
import Testing

@testable import ExamHubServer

@Suite struct TrustedProxiesTests {
    @Test(arguments: [
        ("192.0.2.1", "192.0.2.1"), ("2001:db8::1", "2001:db8::1"), ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::1", "::1"), ("::ffff:192.0.2.1", "192.0.2.1"), ("0.0.0.0", "0.0.0.0"),
    ])
    func addresses(_ text: String, _ canonical: String) throws {
        #expect(try #require(IPAddress(text)).description == canonical)
    }

    @Test(arguments: ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1.2.3.4:80", "[::1]", "::g", "fe80::1%eth0", "localhost",
        " 1.2.3.4", "1:2:3:4:5:6:7:8:9"])
    func notAddresses(_ text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func networks() throws {
        let ten = try #require(IPNetwork("10.0.0.0/8"))
        #expect(ten.contains(try #require(IPAddress("10.200.3.4"))))
        #expect(!ten.contains(try #require(IPAddress("11.0.0.1"))))
        let odd = try #require(IPNetwork("192.168.1.128/25"))
        #expect(odd.contains(try #require(IPAddress("192.168.1.200"))))
        #expect(!odd.contains(try #require(IPAddress("192.168.1.100"))))
        let v6 = try #require(IPNetwork("fd00::/8"))
        #expect(v6.contains(try #require(IPAddress("fd12:3456::1"))))
        #expect(!v6.contains(try #require(IPAddress("fe80::1"))))
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))  // families never mix
        let one = try #require(IPNetwork(" 203.0.113.7 "))
        #expect(one.prefixLength == 32)
        #expect(try #require(IPNetwork("::ffff:10.0.0.0/104")) == IPNetwork("10.0.0.0/8"))
        #expect(try #require(IPNetwork("0.0.0.0/0")).contains(try #require(IPAddress("8.8.8.8"))))
        #expect(try #require(IPNetwork("::/0")).contains(try #require(IPAddress("2001:db8::1"))))
    }

    @Test(arguments: ["10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "garbage", "10.0.0.0/ 8",
        "::ffff:10.0.0.0/8"])
    func notNetworks(_ text: String) {
        #expect(IPNetwork(text) == nil)
    }

    @Test func parsesTheSetting() throws {
        let proxies = try TrustedProxies(parsing: " 10.0.0.0/8, 127.0.0.1 ,, ::1 ")
        #expect(proxies.networks.map(\.description) == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"])
        #expect(throws: HubError.self) { try TrustedProxies(parsing: "10.0.0.0/8, example.com") }
        #expect(try TrustedProxies(parsing: "").isEmpty)
    }

    func headers(_ pairs: [(String, String)]) -> HTTPHeaders { HTTPHeaders(pairs) }

    let proxies = TrustedProxies([IPNetwork("10.0.0.0/8")!, IPNetwork("fd00::/8")!])

    @Test func untrustedPeersHeadersAreIgnored() {
        let h = headers([("X-Forwarded-For", "1.1.1.1"), ("Forwarded", "for=2.2.2.2")])
        #expect(proxies.clientAddress(peer: "203.0.113.9", headers: h) == "203.0.113.9")
        #expect(TrustedProxies.none.clientAddress(peer: "10.0.0.1", headers: h) == "10.0.0.1")
        #expect(proxies.clientAddress(peer: nil, headers: h) == nil)
        #expect(proxies.clientAddress(peer: "::ffff:203.0.113.9", headers: h) == "203.0.113.9")
    }

    @Test func xForwardedForTakesTheRightmostUntrustedHop() {
        let h = headers([("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.1.1")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: h) == "198.51.100.7")
        // Several header lines are one list, in order.
        let split = headers([("X-Forwarded-For", "6.6.6.6"), ("X-Forwarded-For", "198.51.100.7, 10.1.1.1")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: split) == "198.51.100.7")
        // Ports and brackets are tolerated; IPv6.
        let v6 = headers([("X-Forwarded-For", "[2001:db8::5]:443, 198.51.100.7:8080, fd00::9")])
        #expect(proxies.clientAddress(peer: "fd00::1", headers: v6) == "198.51.100.7")
        // Every hop a proxy: the leftmost is as far as anyone can tell.
        let allProxies = headers([("X-Forwarded-For", "10.9.9.9, 10.1.1.1")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: allProxies) == "10.9.9.9")
        // No header: the proxy itself.
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: [:]) == "10.0.0.2")
    }

    @Test func garbageStopsTheWalkAtTheLastVerifiedHop() {
        let h = headers([("X-Forwarded-For", "1.2.3.4, unknown, 10.1.1.1")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: h) == "10.1.1.1")
        let junk = headers([("X-Forwarded-For", "<script>")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: junk) == "10.0.0.2")
        let empty = headers([("X-Forwarded-For", "")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: empty) == "10.0.0.2")
    }

    @Test func forwardedWinsAndHonoursQuotedForms() {
        let h = headers([
            ("Forwarded", #"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.1"#),
            ("X-Forwarded-For", "6.6.6.6"),
        ])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: h) == "2001:db8:cafe::17")
        let quotedV4 = headers([("Forwarded", #"for="198.51.100.17:4711", For=10.3.3.3"#)])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: quotedV4) == "198.51.100.17")
        // Obfuscated identifiers and "unknown" cannot be verified: stop there.
        let hidden = headers([("Forwarded", "for=_hidden, for=10.3.3.3")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: hidden) == "10.3.3.3")
        let unknown = headers([("Forwarded", "for=unknown")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: unknown) == "10.0.0.2")
        // An element without for= says nothing about its hop.
        let noFor = headers([("Forwarded", "for=198.51.100.1, proto=https")])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: noFor) == "10.0.0.2")
    }

    @Test(arguments: [
        #"for="unterminated"#, "for=[2001:db8::1]", #"for="[2001:db8::1"#, #"for="1.2.3.4:99999""#, "for=1.2.3.4:80",
        #"for="[1.2.3.4]""#,
    ])
    func malformedForwardedIsIgnored(_ value: String) {
        // Unparseable as a whole, or a node that is not an address: the proxy is the client.
        let h = headers([("Forwarded", value)])
        #expect(proxies.clientAddress(peer: "10.0.0.2", headers: h) == "10.0.0.2")
    }
}
