// Errors: every failure a CRI call can meet, mapped to the gRPC status a
// kubelet (or a person with crictl) can act on: NotFound for an unknown id,
// InvalidArgument naming the field, FailedPrecondition for a wrong state,
// AlreadyExists for a duplicate name.

import GRPCCore
import Sandbox

enum CRIError: Error, CustomStringConvertible {
    case notFound(String)
    case invalidArgument(String)
    case failedPrecondition(String)
    case alreadyExists(String)
    case deadlineExceeded(String)
    case unimplemented(String)
    case internalError(String)

    var description: String {
        switch self {
        case .notFound(let m), .invalidArgument(let m), .failedPrecondition(let m), .alreadyExists(let m),
             .deadlineExceeded(let m), .unimplemented(let m), .internalError(let m): return m
        }
    }

    var rpcError: RPCError {
        switch self {
        case .notFound(let m): return RPCError(code: .notFound, message: m)
        case .invalidArgument(let m): return RPCError(code: .invalidArgument, message: m)
        case .failedPrecondition(let m): return RPCError(code: .failedPrecondition, message: m)
        case .alreadyExists(let m): return RPCError(code: .alreadyExists, message: m)
        case .deadlineExceeded(let m): return RPCError(code: .deadlineExceeded, message: m)
        case .unimplemented(let m): return RPCError(code: .unimplemented, message: m)
        case .internalError(let m): return RPCError(code: .internalError, message: m)
        }
    }

    init(_ e: PodError) {
        switch e.kind {
        case .notFound: self = .notFound(e.description)
        case .alreadyExists: self = .alreadyExists(e.description)
        case .failedPrecondition: self = .failedPrecondition(e.description)
        case .invalidArgument: self = .invalidArgument(e.description)
        case .unimplemented: self = .unimplemented(e.description)
        case .internalError: self = .internalError(e.description)
        }
    }
}

/// Runs a handler body and turns whatever it throws into an RPCError.
func rpc<T>(_ body: () async throws -> T) async throws -> T {
    do { return try await body() } catch let e as CRIError {
        throw e.rpcError
    } catch let e as PodError {
        throw CRIError(e).rpcError
    } catch let e as RPCError {
        throw e
    } catch {
        throw RPCError(code: .internalError, message: "\(error)")
    }
}

/// A required string field: InvalidArgument naming it when empty.
func require(_ value: String, _ field: String) throws -> String {
    if value.isEmpty { throw CRIError.invalidArgument("\(field) is required") }
    return value
}

/// A name that becomes part of a path or a hostname must not be able to
/// walk out of its directory.
func requireSafeName(_ value: String, _ field: String) throws -> String {
    _ = try require(value, field)
    if value.contains("/") || value == "." || value == ".." || value.contains("\0") || value.utf8.count > 253 {
        throw CRIError.invalidArgument("\(field) \(value.debugDescription) is not a valid name")
    }
    return value
}
