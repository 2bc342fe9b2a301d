import ExamHubAuth
import ExamHubDomain
import ExamHubWire
import NIOCore
import NIOHTTP1

/// The browser side: `GET /client/examhub.js` (always), the demo pages under `/demo/` and the dev token route
/// `GET /demo/token` (dev mode only; 404 otherwise, as if they did not exist).
extension HTTPResponder {
    /// Whether `path` belongs to the browser routes.
    static func isClientPath(_ path: String) -> Bool {
        path.hasPrefix("/client/") || path == "/demo" || path.hasPrefix("/demo/")
    }

    func clientRoute(context: ChannelHandlerContext, head: HTTPRequestHead, path: String) {
        let devMode = services.configuration.devMode
        let isToken = path == "/demo/token"
        let asset = ClientAssets.byPath[path]
        guard (asset.map { !$0.devOnly || devMode } ?? false) || (isToken && devMode) else {
            let error = HubError.notFound("no route for \(head.method) \(path.prefix(128))")
            return respondError(context: context, head: head, error)
        }
        guard head.method == .GET || head.method == .HEAD else {
            return respondError(
                context: context, head: head, HubError(.badRequest, "method \(head.method) not allowed"),
                status: .methodNotAllowed)
        }
        if isToken { return devToken(context: context, head: head) }
        guard let asset else { return }

        var headers = HTTPHeaders()
        headers.add(name: "ETag", value: asset.etag)
        headers.add(name: "X-Content-Type-Options", value: "nosniff")
        if asset.devOnly {
            // The demo pages change with the binary: always revalidate (a 304 is cheap).
            headers.add(name: "Cache-Control", value: "no-cache")
        } else {
            // Apps on other origins import the module from the hub.
            headers.add(name: "Cache-Control", value: "public, max-age=300")
            headers.add(name: "Access-Control-Allow-Origin", value: "*")
        }
        let validators = head.headers[canonicalForm: "If-None-Match"]
        if validators.contains(where: { $0 == Substring(asset.etag) || $0 == "*" }) {
            return respond(
                context: context, head: head, status: .notModified, contentType: asset.contentType,
                body: context.channel.allocator.buffer(capacity: 0), headers: headers)
        }
        var body = context.channel.allocator.buffer(capacity: asset.body.utf8.count)
        body.writeString(asset.body)
        respond(
            context: context, head: head, status: .ok, contentType: asset.contentType, body: body,
            headers: headers)
    }

    /// `GET /demo/token?role=candidate&sub=u1[&exam=e1][&tenant=demo]`: a 12-hour dev token, so the demo pages work
    /// without copying tokens around. Dev mode only (the hub then knows its own HS256 secret); never logged.
    private func devToken(context: ChannelHandlerContext, head: HTTPRequestHead) {
        let query = HTTPAPI.queryItems(head.uri.split(separator: "?", maxSplits: 1).dropFirst().first.map(String.init))
        guard let minter = services.devTokenMinter else {
            return respondError(context: context, head: head, .notFound("no dev token minter on this node"))
        }
        guard let role = Role(rawValue: query["role"] ?? "candidate") else {
            let error = HubError.badRequest("role must be candidate, proctor, admin or service")
            return respondError(context: context, head: head, error)
        }
        let sub = query["sub"] ?? "dev-\(role.rawValue)"
        let tenant = query["tenant"] ?? "demo"
        let exams = query["exam"].map { [$0] }
        for (name, value) in [("sub", sub), ("tenant", tenant)] + (exams ?? []).map({ ("exam", $0) }) {
            guard ChannelName.isValidID(value) else {
                return respondError(context: context, head: head, .badRequest("\(name) is not a valid identifier"))
            }
        }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask { () -> String? in
            try? await minter.mint(sub: sub, tenant: tenant, role: role, exams: exams, ttlSeconds: 43_200)
        }.whenSuccess { token in
            let (responder, context) = loopBound.value
            guard let token else {
                let error = HubError(.internal, "could not mint a token")
                return responder.respondError(context: context, head: head, error)
            }
            var body = context.channel.allocator.buffer(capacity: token.utf8.count + 128)
            body.writeJSONValue(
                .object([
                    "token": .string(token), "role": .string(role.rawValue), "sub": .string(sub),
                    "tenant": .string(tenant),
                ]))
            responder.respond(context: context, head: head, status: .ok, contentType: "application/json", body: body)
        }
    }
}
