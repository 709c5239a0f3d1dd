import Foundation

/// Roles of the small built-in authorization scheme.
public enum Role: String, Sendable {
    /// Every verb on every resource.
    case admin
    /// get, list and watch only.
    case viewer
    /// A node agent: its own Node and Lease, the pods bound to it (NodeAuthorizer.swift).
    case node
    /// Nothing (authenticated but unprivileged).
    case none
}

public struct UserInfo: Sendable, Equatable {
    public var name: String
    public var role: Role
    /// For the node role: the Node this identity speaks for.
    public var nodeName: String?
    public init(name: String, role: Role, nodeName: String? = nil) { self.name = name; self.role = role; self.nodeName = nodeName }

    /// A user named by a token file or a client certificate (CN and O): the groups
    /// `system:masters` or `admin` make an admin, `system:nodes` with the name
    /// `system:node:NAME` the agent of Node NAME, `moat:viewers` or `viewer` a viewer.
    public init(name: String, groups: [String]) {
        self.name = name
        nodeName = nil
        if groups.contains("admin") || groups.contains("system:masters") { role = .admin }
        else if groups.contains("system:nodes"), name.hasPrefix("system:node:"), name.count > 12 {
            role = .node; nodeName = String(name.dropFirst(12))
        } else if groups.contains("viewer") || groups.contains("moat:viewers") { role = .viewer }
        else { role = .none }
    }
}

/// Bearer-token authentication from a static token file, plus role-based authorization.
///
/// The token file is CSV, one user per line: `token,user,uid,"group1,group2"` (the usual
/// static-token layout) where a group named `admin` or `system:masters` grants the admin
/// role and `viewer` the viewer role; as a shorthand the third column may be the role
/// itself: `token,user,admin`. Blank lines and lines starting with `#` are ignored.
public struct Authorizer: Sendable {
    let users: [String: UserInfo]

    public init(users: [String: UserInfo]) { self.users = users }

    public init(tokenFile path: String) throws {
        try self.init(tokenFileContents: String(contentsOfFile: path, encoding: .utf8))
    }

    public init(tokenFileContents text: String) throws {
        var users: [String: UserInfo] = [:]
        for raw in text.split(whereSeparator: \.isNewline) {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if line.isEmpty || line.hasPrefix("#") { continue }
            let cols = Self.splitCSV(line)
            guard cols.count >= 2, !cols[0].isEmpty else { throw APIError.badRequest("malformed token file line: \(line)") }
            let extra = cols.dropFirst(2).flatMap { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } }
            users[cols[0]] = UserInfo(name: cols[1], groups: extra)
        }
        self.users = users
    }

    static func splitCSV(_ line: String) -> [String] {
        var out: [String] = [], cur = "", quoted = false
        for ch in line {
            if ch == "\"" { quoted.toggle() } else if ch == "," && !quoted { out.append(cur); cur = "" } else { cur.append(ch) }
        }
        out.append(cur)
        return out.map { $0.trimmingCharacters(in: .whitespaces) }
    }

    public func user(forToken token: String) -> UserInfo? { users[token] }

    /// The static part of authorization. Node identities are refused here: what a node may
    /// touch depends on the objects (`NodeAuthorizer`), which the HTTP front end checks.
    public func authorize(user: UserInfo, verb: String, resource: ResourceType, subresource: String?, namespace: String) throws {
        switch user.role {
        case .admin: return
        case .viewer where ["get", "list", "watch"].contains(verb): return
        default:
            let res = subresource.map { "\(resource.plural)/\($0)" } ?? resource.plural
            let scope = namespace.isEmpty ? "at the cluster scope" : "in the namespace \"\(namespace)\""
            throw APIError.forbidden("\(res) is forbidden: User \"\(user.name)\" cannot \(verb) resource \"\(res)\" in API group \"\(resource.group)\" \(scope)")
        }
    }
}
