import Foundation

/// One field-level problem found by validation.
public struct FieldError: Sendable, Equatable {
    public enum Reason: String, Sendable {
        case required = "FieldValueRequired"
        case invalid = "FieldValueInvalid"
        case notSupported = "FieldValueNotSupported"
        case duplicate = "FieldValueDuplicate"
        case forbidden = "FieldValueForbidden"
        case notFound = "FieldValueNotFound"
    }
    public var field: String
    public var reason: Reason
    public var message: String

    public static func required(_ field: String) -> FieldError { .init(field: field, reason: .required, message: "Required value") }
    public static func invalid(_ field: String, _ value: String, _ detail: String) -> FieldError {
        .init(field: field, reason: .invalid, message: "Invalid value: \"\(value)\": \(detail)")
    }
    public static func notSupported(_ field: String, _ value: String, _ supported: [String]) -> FieldError {
        .init(field: field, reason: .notSupported, message: "Unsupported value: \"\(value)\": supported values: \(supported.map { "\"\($0)\"" }.joined(separator: ", "))")
    }
    public static func duplicate(_ field: String, _ value: String) -> FieldError {
        .init(field: field, reason: .duplicate, message: "Duplicate value: \"\(value)\"")
    }
    public static func forbidden(_ field: String, _ detail: String) -> FieldError {
        .init(field: field, reason: .forbidden, message: "Forbidden: \(detail)")
    }
    public static func notFound(_ field: String, _ value: String) -> FieldError {
        .init(field: field, reason: .notFound, message: "Not found: \"\(value)\"")
    }
    /// "field: message", as it appears in a Status message.
    public var summary: String { "\(field): \(message)" }
}

/// An API failure carried as a Kubernetes `Status` object.
public struct APIError: Error, Sendable, CustomStringConvertible {
    public var code: Int
    public var reason: String
    public var message: String
    public var details: JSON

    public init(code: Int, reason: String, message: String, details: JSON = .null) {
        self.code = code; self.reason = reason; self.message = message; self.details = details
    }

    public var description: String { "\(code) \(reason): \(message)" }

    /// The `Status` object returned to clients.
    public var status: JSON {
        var s: JSON = [
            "kind": "Status", "apiVersion": "v1", "metadata": [:], "status": "Failure",
            "message": .string(message), "reason": .string(reason), "code": .int(code),
        ]
        if !details.isNull { s["details"] = details }
        return s
    }

    /// Reconstructs an error from a `Status` body received over HTTP.
    public init(status: JSON, httpCode: Int) {
        self.init(code: status["code"].int ?? httpCode, reason: status["reason"].string ?? "Unknown",
                  message: status["message"].string ?? "HTTP \(httpCode)", details: status["details"])
    }

    static func qualified(_ rt: ResourceType) -> String { rt.group.isEmpty ? rt.plural : "\(rt.plural).\(rt.group)" }
    static func detailsJSON(_ rt: ResourceType, _ name: String) -> JSON {
        ["name": .string(name), "group": .string(rt.group), "kind": .string(rt.plural)]
    }

    public static func notFound(_ rt: ResourceType, _ name: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "\(qualified(rt)) \"\(name)\" not found", details: detailsJSON(rt, name))
    }
    public static func alreadyExists(_ rt: ResourceType, _ name: String) -> APIError {
        APIError(code: 409, reason: "AlreadyExists", message: "\(qualified(rt)) \"\(name)\" already exists", details: detailsJSON(rt, name))
    }
    public static func conflict(_ rt: ResourceType, _ name: String, _ why: String = "the object has been modified; please apply your changes to the latest version and try again") -> APIError {
        APIError(code: 409, reason: "Conflict", message: "Operation cannot be fulfilled on \(qualified(rt)) \"\(name)\": \(why)", details: detailsJSON(rt, name))
    }
    public static func invalid(_ rt: ResourceType, _ name: String, _ errors: [FieldError]) -> APIError {
        let kindName = rt.group.isEmpty ? rt.kind : "\(rt.kind).\(rt.group)"
        let list = errors.map(\.summary)
        let joined = list.count == 1 ? list[0] : "[" + list.joined(separator: ", ") + "]"
        let causes: [JSON] = errors.map { ["reason": .string($0.reason.rawValue), "message": .string($0.message), "field": .string($0.field)] }
        return APIError(code: 422, reason: "Invalid", message: "\(kindName) \"\(name)\" is invalid: \(joined)",
                        details: ["name": .string(name), "group": .string(rt.group), "kind": .string(rt.kind), "causes": .array(causes)])
    }
    public static func badRequest(_ message: String) -> APIError { APIError(code: 400, reason: "BadRequest", message: message) }
    public static func gone(_ message: String) -> APIError { APIError(code: 410, reason: "Expired", message: message) }
    public static func unauthorized() -> APIError { APIError(code: 401, reason: "Unauthorized", message: "Unauthorized") }
    public static func forbidden(_ message: String) -> APIError { APIError(code: 403, reason: "Forbidden", message: message) }
    public static func methodNotAllowed(_ message: String = "the server does not allow this method on the requested resource") -> APIError {
        APIError(code: 405, reason: "MethodNotAllowed", message: message)
    }
    public static func unsupportedMediaType(_ type: String) -> APIError {
        APIError(code: 415, reason: "UnsupportedMediaType", message: "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json; got \(type)")
    }
    public static func notFoundPath(_ path: String) -> APIError {
        APIError(code: 404, reason: "NotFound", message: "the server could not find the requested resource (\(path))")
    }
    public static func internalError(_ message: String) -> APIError { APIError(code: 500, reason: "InternalError", message: message) }

    public var isNotFound: Bool { code == 404 }
    public var isConflict: Bool { code == 409 && reason == "Conflict" }
    public var isAlreadyExists: Bool { code == 409 && reason == "AlreadyExists" }
    public var isGone: Bool { code == 410 }
}
