import Foundation
import XCTest
@testable import ControlPlane

/// The HTTP API on SQLite here, and on etcd in `EtcdAPIServerTests`.
class APIServerTests: XCTestCase {
    class var backend: Backend { .sqlite }
    var cluster: TestCluster!
    var client: HTTPAPIClient!

    override func setUp() async throws {
        try requireBackend(Self.backend)
        cluster = try await TestCluster(backend: Self.backend, retainedEvents: 50_000)
        client = try await cluster.serve()
    }

    override func tearDown() async throws {
        await cluster?.stop()
        cluster = nil
    }

    func expectError(_ code: Int, _ what: String, _ op: () async throws -> Void) async -> APIError? {
        do { try await op(); XCTFail("\(what): expected HTTP \(code), got success"); return nil }
        catch let e as APIError { XCTAssertEqual(e.code, code, "\(what): \(e)"); return e }
        catch { XCTFail("\(what): unexpected error \(error)"); return nil }
    }

    func testDiscoveryAndVersion() async throws {
        let (c1, api) = try await client.raw("GET", "/api")
        XCTAssertEqual(c1, 200)
        XCTAssertEqual(try JSON.parse(api)["versions"], ["v1"])
        let v1 = try JSON.parse(try await client.raw("GET", "/api/v1").1)
        let names = (v1["resources"].array ?? []).compactMap { $0["name"].string }
        for r in ["pods", "nodes", "services", "endpoints", "configmaps", "secrets", "events", "namespaces", "pods/status", "pods/binding"] {
            XCTAssertTrue(names.contains(r), "missing \(r) in /api/v1")
        }
        let groups = try JSON.parse(try await client.raw("GET", "/apis").1)
        XCTAssertEqual(Set((groups["groups"].array ?? []).compactMap { $0["name"].string }).isSuperset(of: ["apps", "batch"]), true)
        let apps = try JSON.parse(try await client.raw("GET", "/apis/apps/v1").1)
        let appNames = (apps["resources"].array ?? []).compactMap { $0["name"].string }
        XCTAssertTrue(appNames.contains("deployments/scale"))
        XCTAssertTrue(appNames.contains("daemonsets"))
        let batch = try JSON.parse(try await client.raw("GET", "/apis/batch/v1").1)
        XCTAssertEqual(batch["resources"].array?.first?["kind"], "Job")
        let version = try JSON.parse(try await client.raw("GET", "/version").1)
        XCTAssertEqual(version["major"], "1")
        let (notFound, _) = try await client.raw("GET", "/apis/nope/v1/things")
        XCTAssertEqual(notFound, 404)
    }

    func testOpenAPIV3DeclaresServerSideFieldValidation() async throws {
        let (code, data) = try await client.raw("GET", "/openapi/v3")
        XCTAssertEqual(code, 200)
        let root = try JSON.parse(data)
        guard let url = root[path: "paths", "apis/apps/v1", "serverRelativeURL"].string else { return XCTFail("no apps/v1 in \(root.text)") }
        XCTAssertNotNil(root[path: "paths", "api/v1", "serverRelativeURL"].string)
        let (gvCode, gvData) = try await client.raw("GET", url)
        XCTAssertEqual(gvCode, 200)
        let doc = try JSON.parse(gvData)
        let patch = doc[path: "paths", "/apis/apps/v1/namespaces/{namespace}/deployments/{name}", "patch"]
        XCTAssertEqual(patch["x-kubernetes-group-version-kind"], ["group": "apps", "version": "v1", "kind": "Deployment"])
        XCTAssertTrue((patch["parameters"].array ?? []).contains { $0["name"] == "fieldValidation" && $0["in"] == "query" })
        let (missing, _) = try await client.raw("GET", "/openapi/v3/apis/nope/v1")
        XCTAssertEqual(missing, 404)
        // The parameter kubectl then sends is accepted.
        let (created, _) = try await client.raw("POST", "/api/v1/namespaces/default/configmaps?fieldValidation=Strict&fieldManager=kubectl",
                                                body: ["metadata": ["name": "fv"]])
        XCTAssertEqual(created, 201)
    }

    func testCreateDefaultsAndGenerateName() async throws {
        var pod = podJSON("")
        pod[path: "metadata", "name"] = .null
        pod[path: "metadata", "generateName"] = "web-"
        let created = try await client.create(.pods, namespace: "default", pod)
        XCTAssertTrue(created.name.hasPrefix("web-") && created.name.count == 9, created.name)
        XCTAssertEqual(created.namespace, "default")
        XCTAssertFalse(created.uid.isEmpty)
        XCTAssertNotNil(created.creationTimestamp)
        XCTAssertFalse(created.resourceVersion.isEmpty)
        XCTAssertEqual(created.generation, 1)
        XCTAssertEqual(created.phase, "Pending")
        XCTAssertEqual(created[path: "spec", "restartPolicy"], "Always")
        let fetched = try await client.get(.pods, namespace: "default", name: created.name)
        XCTAssertEqual(fetched, created)
        let d = try await client.create(.deployments, namespace: "default", deploymentJSON("d", replicas: 2))
        XCTAssertEqual(d[path: "spec", "revisionHistoryLimit"], 10)
        XCTAssertEqual(d.kind, "Deployment")
        XCTAssertEqual(d.apiVersion, "apps/v1")
        _ = await expectError(409, "duplicate") { _ = try await self.client.create(.deployments, namespace: "default", deploymentJSON("d", replicas: 2)) }
        _ = await expectError(404, "missing namespace") { _ = try await self.client.create(.pods, namespace: "nope", podJSON("x")) }
    }

    func testValidationReturns422NamingTheField() async throws {
        var d = deploymentJSON("bad", replicas: 1)
        d[path: "spec", "selector"] = .null
        let e = await expectError(422, "no selector") { _ = try await self.client.create(.deployments, namespace: "default", d) }
        XCTAssertEqual(e?.reason, "Invalid")
        let fields = (e?.details["causes"].array ?? []).compactMap { $0["field"].string }
        XCTAssertTrue(fields.contains("spec.selector"), "\(fields)")
        XCTAssertTrue(e?.message.contains("Deployment.apps \"bad\" is invalid") ?? false, e?.message ?? "")

        var p = podJSON("p")
        p[path: "spec", "containers"] = [["name": "c"]]
        let e2 = await expectError(422, "no image") { _ = try await self.client.create(.pods, namespace: "default", p) }
        XCTAssertEqual(e2?.details["causes"].array?.first?["field"], "spec.containers[0].image")
        XCTAssertEqual(e2?.details["causes"].array?.first?["reason"], "FieldValueRequired")

        var m = deploymentJSON("mismatch", replicas: 1)
        m[path: "spec", "template", "metadata", "labels"] = ["app": "other"]
        let e3 = await expectError(422, "selector mismatch") { _ = try await self.client.create(.deployments, namespace: "default", m) }
        XCTAssertEqual(e3?.details["causes"].array?.first?["field"], "spec.template.metadata.labels")

        let e4 = await expectError(422, "bad name") { _ = try await self.client.create(.configmaps, namespace: "default", ["metadata": ["name": "Bad_Name"]]) }
        XCTAssertEqual(e4?.details["causes"].array?.first?["field"], "metadata.name")
    }

    func testStalePutConflictsAndMergePatch() async throws {
        let cm = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "c"], "data": ["a": "1"]])
        var v2 = cm; v2[path: "data", "a"] = "2"
        let updated = try await client.update(.configmaps, v2)
        XCTAssertEqual(updated[path: "data", "a"], "2")
        XCTAssertGreaterThan(Int(updated.resourceVersion)!, Int(cm.resourceVersion)!)
        var stale = cm; stale[path: "data", "a"] = "3"
        let e = await expectError(409, "stale PUT") { _ = try await self.client.update(.configmaps, stale) }
        XCTAssertEqual(e?.reason, "Conflict")
        let patched = try await client.patch(.configmaps, namespace: "default", name: "c", ["data": ["b": "x", "a": nil]])
        XCTAssertEqual(patched["data"], ["b": "x"])
        let (code, body) = try await client.raw("PATCH", "/api/v1/namespaces/default/configmaps/c", body: ["data": ["z": "1"]], contentType: "application/apply-patch+yaml")
        XCTAssertEqual(code, 415, String(decoding: body, as: UTF8.self))
        let jp: JSON = [["op": "test", "path": "/data/b", "value": "x"], ["op": "add", "path": "/data/j", "value": "1"], ["op": "remove", "path": "/data/b"]]
        let (jcode, jbody) = try await client.raw("PATCH", "/api/v1/namespaces/default/configmaps/c", body: jp, contentType: "application/json-patch+json")
        XCTAssertEqual(jcode, 200, String(decoding: jbody, as: UTF8.self))
        XCTAssertEqual(try JSON.parse(jbody)["data"], ["j": "1"])
        let (failCode, _) = try await client.raw("PATCH", "/api/v1/namespaces/default/configmaps/c", body: [["op": "test", "path": "/data/j", "value": "2"]], contentType: "application/json-patch+json")
        XCTAssertEqual(failCode, 422)
        _ = try await client.patch(.configmaps, namespace: "default", name: "c", ["data": ["b": "x", "j": nil]])
        let (scode, sbody) = try await client.raw("PATCH", "/api/v1/namespaces/default/configmaps/c", body: ["data": ["s": "1"]], contentType: "application/strategic-merge-patch+json")
        XCTAssertEqual(scode, 200)
        XCTAssertEqual(try JSON.parse(sbody)["data"], ["b": "x", "s": "1"])
    }

    func testStrategicMergeMergesContainersByName() async throws {
        var p = podJSON("sm")
        p[path: "spec", "containers"] = [["name": "a", "image": "img:1", "ports": [["containerPort": 80]]], ["name": "b", "image": "b:1"]]
        _ = try await client.create(.pods, namespace: "default", p)
        let patch: JSON = ["spec": ["$setElementOrder/containers": [["name": "a"], ["name": "b"]], "containers": [["name": "a", "image": "img:2"]]]]
        let (code, body) = try await client.raw("PATCH", "/api/v1/namespaces/default/pods/sm", body: patch, contentType: "application/strategic-merge-patch+json")
        XCTAssertEqual(code, 200)
        let cs = try JSON.parse(body)[path: "spec", "containers"].array ?? []
        XCTAssertEqual(cs.map { $0["image"] }, ["img:2", "b:1"])
        XCTAssertEqual(cs.first?["ports"], [["containerPort": 80, "protocol": "TCP"]])
    }

    func testLabelAndFieldSelectors() async throws {
        let specs: [(String, [String: String])] = [("a", ["app": "web", "tier": "fe"]), ("b", ["app": "web", "tier": "be"]),
                                                   ("c", ["app": "db"]), ("d", [:])]
        for (n, l) in specs { _ = try await client.create(.pods, namespace: "default", podJSON(n, labels: l)) }
        func names(_ sel: String? = nil, field: String? = nil) async throws -> [String] {
            var q: [String] = []
            if let sel { q.append("labelSelector=" + sel.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!) }
            if let field { q.append("fieldSelector=" + field.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!) }
            let (code, body) = try await client.raw("GET", "/api/v1/namespaces/default/pods" + (q.isEmpty ? "" : "?" + q.joined(separator: "&")))
            XCTAssertEqual(code, 200, String(decoding: body, as: UTF8.self))
            return ((try JSON.parse(body))["items"].array ?? []).map(\.name).sorted()
        }
        let r1 = try await names("app=web"); XCTAssertEqual(r1, ["a", "b"])
        let r2 = try await names("app==web,tier!=fe"); XCTAssertEqual(r2, ["b"])
        let r3 = try await names("app in (web,db)"); XCTAssertEqual(r3, ["a", "b", "c"])
        let r4 = try await names("app notin (web)"); XCTAssertEqual(r4, ["c", "d"])
        let r5 = try await names("tier"); XCTAssertEqual(r5, ["a", "b"])
        let r6 = try await names("!app"); XCTAssertEqual(r6, ["d"])
        let r7 = try await names(field: "metadata.name=c"); XCTAssertEqual(r7, ["c"])
        let r8 = try await names(field: "status.phase=Pending,metadata.name!=a"); XCTAssertEqual(r8, ["b", "c", "d"])
        let r9 = try await names(field: "metadata.namespace=default"); XCTAssertEqual(r9.count, 4)
        let (bad, _) = try await client.raw("GET", "/api/v1/pods?fieldSelector=spec.unknown%3Dx")
        XCTAssertEqual(bad, 400)
        // Cluster-wide list across namespaces.
        _ = try await client.create(.namespaces, namespace: "", ["metadata": ["name": "other"]])
        _ = try await client.create(.pods, namespace: "other", podJSON("e", labels: ["app": "web"]))
        let all = try await client.list(.pods, namespace: nil, labelSelector: try LabelSelector.parse("app=web"))
        XCTAssertEqual(all.map(\.key).sorted(), ["default/a", "default/b", "other/e"])
    }

    func testFinalizersDeferDeletion() async throws {
        var cm: JSON = ["metadata": ["name": "f", "finalizers": ["example.com/keep"]]]
        cm = try await client.create(.configmaps, namespace: "default", cm)
        try await client.delete(.configmaps, namespace: "default", name: "f")
        let marked = try await client.get(.configmaps, namespace: "default", name: "f")
        XCTAssertNotNil(marked.deletionTimestamp)
        _ = try await client.patch(.configmaps, namespace: "default", name: "f", ["metadata": ["finalizers": nil]])
        let e = await expectError(404, "after finalizer removal") { _ = try await self.client.get(.configmaps, namespace: "default", name: "f") }
        XCTAssertEqual(e?.reason, "NotFound")
    }

    func testStatusAndScaleSubresources() async throws {
        _ = try await client.create(.deployments, namespace: "default", deploymentJSON("s", replicas: 2))
        // Main-resource writes ignore status; the status subresource only changes status.
        var d = try await client.get(.deployments, namespace: "default", name: "s")
        d[path: "status", "replicas"] = 7
        d[path: "spec", "replicas"] = 3
        let afterMain = try await client.update(.deployments, d)
        XCTAssertTrue(afterMain[path: "status", "replicas"].isNull)
        XCTAssertEqual(afterMain.replicas, 3)
        XCTAssertEqual(afterMain.generation, 2)
        var s = afterMain
        s[path: "status", "replicas"] = 5
        s[path: "spec", "replicas"] = 9
        let afterStatus = try await client.update(.deployments, s, subresource: "status")
        XCTAssertEqual(afterStatus[path: "status", "replicas"], 5)
        XCTAssertEqual(afterStatus.replicas, 3)
        XCTAssertEqual(afterStatus.generation, 2)
        let scale = try await client.get(.deployments, namespace: "default", name: "s/scale")
        XCTAssertEqual(scale.kind, "Scale")
        XCTAssertEqual(scale[path: "spec", "replicas"], 3)
        XCTAssertEqual(scale[path: "status", "selector"], "app=s")
        _ = try await client.patch(.deployments, namespace: "default", name: "s", ["spec": ["replicas": 6]], subresource: "scale")
        var sc = try await client.get(.deployments, namespace: "default", name: "s/scale")
        sc[path: "spec", "replicas"] = 4
        let put = try await client.update(.deployments, { var x = sc; x.name = "s"; return x }(), subresource: "scale")
        XCTAssertEqual(put[path: "spec", "replicas"], 4)
        let final = try await client.get(.deployments, namespace: "default", name: "s")
        XCTAssertEqual(final.replicas, 4)
        _ = await expectError(409, "stale scale") { _ = try await self.client.update(.deployments, { var x = sc; x.name = "s"; return x }(), subresource: "scale") }
    }

    func testWatchStreamsEventsAndResumes() async throws {
        let start = try await client.list(.configmaps, namespace: "default", options: ListOptions())
        let rv = start["metadata"]["resourceVersion"].string!
        let stream = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: rv))
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "w"]])
        _ = try await client.patch(.configmaps, namespace: "default", name: "w", ["data": ["k": "v"]])
        try await client.delete(.configmaps, namespace: "default", name: "w")
        let events = try await withDeadline(5) {
            var out: [WatchEvent] = []
            for try await e in stream { out.append(e); if out.count == 3 { break } }
            return out
        }
        XCTAssertEqual(events.map(\.type), ["ADDED", "MODIFIED", "DELETED"])
        XCTAssertEqual(events[1].object[path: "data", "k"], "v")
        // Resume from the revision of the first event: only the later two arrive.
        let resumed = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: events[0].object.resourceVersion))
        let types = try await withDeadline(5) { var t: [String] = []; for try await e in resumed { t.append(e.type); if t.count == 2 { break } }; return t }
        XCTAssertEqual(types, ["MODIFIED", "DELETED"])
        // Label-selected watch sees an object leave the selection as DELETED.
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "l", "labels": ["x": "1"]]])
        let sel = try await client.watch(.configmaps, namespace: "default", options: ListOptions(labelSelector: try LabelSelector.parse("x=1")))
        _ = try await client.patch(.configmaps, namespace: "default", name: "l", ["metadata": ["labels": ["x": "2"]]])
        let selTypes = try await withDeadline(5) { var t: [String] = []; for try await e in sel { t.append(e.type); if t.count == 2 { break } }; return t }
        XCTAssertEqual(selTypes, ["ADDED", "DELETED"])
        // A compacted revision yields 410 Gone.
        try await cluster.store.compact(toRevision: try await cluster.store.currentRevision())
        do {
            let gone = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: "1"))
            for try await _ in gone {}
            XCTFail("expected 410")
        } catch let e as APIError { XCTAssertEqual(e.code, 410) }
    }

    func testWatchResumesAcrossServerRestart() async throws {
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "before"]])
        let rv = try await client.get(.configmaps, namespace: "default", name: "before").resourceVersion
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "during"]])
        // The API server restarts; the data (SQLite file or etcd) stays.
        await cluster.stop(keepData: true)
        cluster = try await cluster.reopened()
        client = try await cluster.serve()
        let s = try await client.watch(.configmaps, namespace: "default", options: ListOptions(resourceVersion: rv))
        _ = try await client.create(.configmaps, namespace: "default", ["metadata": ["name": "after"]])
        let names = try await withDeadline(5) { var n: [String] = []; for try await e in s { n.append(e.object.name); if n.count == 2 { break } }; return n }
        XCTAssertEqual(names, ["during", "after"])
    }

    func testBearerTokenAuthAndRoles() async throws {
        await cluster.stop()
        cluster = try await TestCluster(backend: Self.backend)
        let auth = try Authorizer(tokenFileContents: "# tokens\nadmintoken,alice,1,\"admin\"\nviewtoken,bob,viewer\n")
        let anon = try await cluster.serve(authorizer: auth)
        let admin = HTTPAPIClient(port: cluster.port, token: "admintoken")
        let viewer = HTTPAPIClient(port: cluster.port, token: "viewtoken")
        let bad = HTTPAPIClient(port: cluster.port, token: "nope")
        _ = await expectError(401, "no token") { _ = try await anon.list(.pods, namespace: "default") }
        _ = await expectError(401, "bad token") { _ = try await bad.list(.pods, namespace: "default") }
        _ = try await admin.create(.pods, namespace: "default", podJSON("p"))
        let listed = try await viewer.list(.pods, namespace: "default")
        XCTAssertEqual(listed.map(\.name), ["p"])
        let e = await expectError(403, "viewer create") { _ = try await viewer.create(.pods, namespace: "default", podJSON("q")) }
        XCTAssertTrue(e?.message.contains("User \"bob\" cannot create") ?? false, e?.message ?? "")
        _ = await expectError(403, "viewer delete") { try await viewer.delete(.pods, namespace: "default", name: "p") }
        try await admin.delete(.pods, namespace: "default", name: "p")
    }

    /// A node's identity (token of system:node:n1 in system:nodes): its own Node, Lease and
    /// pods, the ConfigMaps its pods use; 403 on everything of another node's.
    func testNodeIdentityIsLimitedToItsOwnObjects() async throws {
        await cluster.stop()
        cluster = try await TestCluster(backend: Self.backend)
        let auth = try Authorizer(tokenFileContents: "admintoken,alice,1,admin\nn1token,system:node:n1,n1,\"system:nodes\"\n")
        _ = try await cluster.serve(authorizer: auth)
        let admin = HTTPAPIClient(port: cluster.port, token: "admintoken")
        let n1 = HTTPAPIClient(port: cluster.port, token: "n1token")
        let node = { (name: String) -> JSON in ["apiVersion": "v1", "kind": "Node", "metadata": ["name": .string(name)]] }
        _ = try await n1.create(.nodes, namespace: "", node("n1"))
        _ = await expectError(403, "create another node") { _ = try await n1.create(.nodes, namespace: "", node("n2")) }
        _ = try await admin.create(.nodes, namespace: "", node("n2"))
        _ = try await n1.patch(.nodes, namespace: "", name: "n1", ["metadata": ["labels": ["a": "b"]]], subresource: nil)
        _ = await expectError(403, "patch another node") { _ = try await n1.patch(.nodes, namespace: "", name: "n2", ["metadata": ["labels": ["a": "b"]]], subresource: nil) }
        _ = await expectError(403, "list all nodes") { _ = try await n1.list(.nodes, namespace: nil) }

        var mine = podJSON("mine"), theirs = podJSON("theirs")
        mine[path: "spec", "nodeName"] = "n1"; theirs[path: "spec", "nodeName"] = "n2"
        mine[path: "spec", "volumes"] = [["name": "v", "configMap": ["name": "used"]]]
        _ = try await admin.create(.pods, namespace: "default", mine)
        _ = try await admin.create(.pods, namespace: "default", theirs)
        for cm in ["used", "unused"] {
            _ = try await admin.create(.configmaps, namespace: "default", ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": .string(cm)]])
        }
        _ = await expectError(403, "create a pod") { _ = try await n1.create(.pods, namespace: "default", podJSON("new")) }
        let got = try await n1.get(.pods, namespace: "default", name: "mine")
        XCTAssertEqual(got.name, "mine")
        _ = await expectError(403, "get another node's pod") { _ = try await n1.get(.pods, namespace: "default", name: "theirs") }
        _ = await expectError(403, "delete another node's pod") { try await n1.delete(.pods, namespace: "default", name: "theirs") }
        _ = await expectError(403, "list every pod") { _ = try await n1.list(.pods, namespace: nil) }
        let opts = ListOptions(fieldSelector: FieldSelector(terms: [.init(field: "spec.nodeName", value: "n1", negated: false)]))
        let listed = try await n1.list(.pods, namespace: nil, options: opts)
        XCTAssertEqual(listed["items"].array?.map(\.name), ["mine"])
        _ = try await n1.patch(.pods, namespace: "default", name: "mine", ["status": ["phase": "Running"]], subresource: "status")
        _ = await expectError(403, "another node's pod status") { _ = try await n1.patch(.pods, namespace: "default", name: "theirs", ["status": ["phase": "Running"]], subresource: "status") }
        let used = try await n1.get(.configmaps, namespace: "default", name: "used")
        XCTAssertEqual(used.name, "used")
        _ = await expectError(403, "an unused ConfigMap") { _ = try await n1.get(.configmaps, namespace: "default", name: "unused") }
        _ = await expectError(403, "a deployment") { _ = try await n1.list(.deployments, namespace: "default") }
        let lease: JSON = ["apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": ["name": "n2", "namespace": "kube-node-lease"]]
        _ = await expectError(403, "another node's lease") { _ = try await n1.create(.leases, namespace: "kube-node-lease", lease) }
    }

    /// Events expire after the registry's event TTL (kube-apiserver's --event-ttl), counted
    /// from their last update, which renews it; other objects do not expire.
    func testEventsExpireAfterTheEventTTL() async throws {
        await cluster.stop()
        cluster = try await TestCluster(backend: Self.backend, eventTTL: .seconds(3))
        client = try await cluster.serve()
        func event(_ name: String) -> JSON {
            ["apiVersion": "v1", "kind": "Event", "metadata": ["name": .string(name), "namespace": "default"],
             "involvedObject": ["kind": "Pod", "name": "p", "namespace": "default"], "reason": "Test", "message": "m", "type": "Normal"]
        }
        let from = try await client.list(.events, namespace: "default", options: ListOptions())["metadata"]["resourceVersion"].string ?? "0"
        for n in ["a", "b"] { _ = try await client.create(.events, namespace: "default", event(n)) }
        var b = try await client.get(.events, namespace: "default", name: "b")
        b["message"] = "updated"
        _ = try await client.update(.events, b)
        let cm: JSON = ["apiVersion": "v1", "kind": "ConfigMap", "metadata": ["name": "stays", "namespace": "default"], "data": ["k": "v"]]
        _ = try await client.create(.configmaps, namespace: "default", cm)
        let names = try await client.list(.events, namespace: "default").compactMap { $0["metadata"]["name"].string }
        XCTAssertEqual(names, ["a", "b"])
        // Both go, as DELETED events to a watch; b (updated) still with its last message.
        let stream = try await client.watch(.events, namespace: "default", options: ListOptions(resourceVersion: from))
        let deleted = try await withDeadline(60) {
            var out: [JSON] = []
            for try await e in stream where e.type == "DELETED" { out.append(e.object); if out.count == 2 { break } }
            return out
        }
        XCTAssertEqual(Set(deleted.compactMap { $0["metadata"]["name"].string }), ["a", "b"])
        XCTAssertEqual(deleted.first { $0["metadata"]["name"] == "b" }?["message"], "updated")
        let left = try await client.list(.events, namespace: "default")
        XCTAssertEqual(left.count, 0)
        let stays = try await client.get(.configmaps, namespace: "default", name: "stays")
        XCTAssertEqual(stays["data"]["k"], "v")
    }

    /// A binding given the pod as its caller saw it is written at that revision without
    /// reading the pod; from a stale copy it reads the pod and keeps what changed since; an
    /// already bound pod, or another pod of the same name, gets 409.
    func testBindingFromTheCallersCopy() async throws {
        let reads = ReadCountingStore(cluster.store)
        let registry = APIRegistry(store: reads)
        let local = LocalAPIClient(registry: registry)
        let pod: JSON = ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "p", "namespace": "default"],
                         "spec": ["containers": [["name": "c", "image": "busybox"]]]]
        let fresh = try await local.create(.pods, namespace: "default", pod)
        let before = reads.gets
        try await local.bind(fresh, node: "n1")
        XCTAssertEqual(reads.gets, before, "a binding from the current copy read the pod")
        let b = try await local.get(.pods, namespace: "default", name: "p")
        XCTAssertEqual(b.nodeName, "n1")
        XCTAssertEqual(b.condition("PodScheduled")?["status"], "True")
        XCTAssertEqual(Int64(b.resourceVersion), (Int64(fresh.resourceVersion) ?? 0) + 1)
        _ = await expectError(409, "binding a bound pod") { try await local.bind(b, node: "n2") }
        _ = await expectError(409, "binding a bound pod from a stale copy") { try await local.bind(fresh, node: "n2") }

        // A stale copy: the pod was labelled since; the binding keeps the label.
        let q0 = try await local.create(.pods, namespace: "default", ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "q", "namespace": "default"],
                                                                     "spec": ["containers": [["name": "c", "image": "busybox"]]]])
        _ = try await local.patch(.pods, namespace: "default", name: "q", ["metadata": ["labels": ["since": "yes"]]])
        try await local.bind(q0, node: "n1")
        let q = try await local.get(.pods, namespace: "default", name: "q")
        XCTAssertEqual(q.nodeName, "n1")
        XCTAssertEqual(q.labels["since"], "yes", "the stale copy overwrote a later change")

        // The same name, another pod (deleted and made again): the old copy's UID does not bind it.
        _ = try await local.create(.pods, namespace: "default", ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "r", "namespace": "default"],
                                                                "spec": ["containers": [["name": "c", "image": "busybox"]]]])
        let r0 = try await local.get(.pods, namespace: "default", name: "r")
        try await registry.delete(.pods, namespace: "default", name: "r", options: .init(gracePeriodSeconds: 0))
        _ = try await local.create(.pods, namespace: "default", ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": "r", "namespace": "default"],
                                                                "spec": ["containers": [["name": "c", "image": "busybox"]]]])
        _ = await expectError(409, "binding another pod of the same name") { try await local.bind(r0, node: "n1") }
        let r = try await local.get(.pods, namespace: "default", name: "r")
        XCTAssertNil(r.nodeName)
    }

    /// Creating a namespaced object checks its namespace inside the create's own transaction
    /// (no read of the namespace first, which on etcd was a second round trip per pod): a pod
    /// in an existing namespace is created without any single-object read, one in a missing
    /// namespace is a 404 naming the namespace (and is not created), an existing name a 409.
    func testCreateChecksTheNamespaceInItsOwnWrite() async throws {
        let reads = ReadCountingStore(cluster.store)
        let local = LocalAPIClient(registry: APIRegistry(store: reads))
        func pod(_ name: String, _ ns: String) -> JSON {
            ["apiVersion": "v1", "kind": "Pod", "metadata": ["name": .string(name), "namespace": .string(ns)],
             "spec": ["containers": [["name": "c", "image": "busybox"]]]]
        }
        let before = reads.gets
        let p = try await local.create(.pods, namespace: "default", pod("one-write", "default"))
        XCTAssertEqual(reads.gets, before, "creating a pod read a single object (the namespace?)")
        XCTAssertEqual(p.namespace, "default")
        let missing = await expectError(404, "a pod in a missing namespace") { _ = try await local.create(.pods, namespace: "absent", pod("x", "absent")) }
        XCTAssertEqual(missing?.details["kind"], "namespaces", "\(String(describing: missing))")
        XCTAssertEqual(missing?.details["name"], "absent")
        let event: JSON = ["apiVersion": "v1", "kind": "Event", "metadata": ["name": "e", "namespace": "absent"],
                           "involvedObject": ["kind": "Pod", "name": "x", "namespace": "absent"], "reason": "R", "message": "m"]
        let missingEvent = await expectError(404, "an Event (expiring) in a missing namespace") { _ = try await local.create(.events, namespace: "absent", event) }
        XCTAssertEqual(missingEvent?.details["kind"], "namespaces")
        let pods = try await local.list(.pods, namespace: nil)
        XCTAssertEqual(pods.map(\.name), ["one-write"], "a create whose namespace was missing wrote its object")
        _ = await expectError(409, "the same name again") { _ = try await local.create(.pods, namespace: "default", pod("one-write", "default")) }
        _ = try await local.create(.namespaces, namespace: "", ["metadata": ["name": "absent"]])
        _ = try await local.create(.pods, namespace: "absent", pod("x", "absent"))
        _ = try await local.create(.events, namespace: "absent", event)
        XCTAssertEqual(reads.gets, before, "creates read single objects")
    }

    func testConcurrentHTTPWritersGet409AndLoseNothing() async throws {
        let conflicts = try await incrementCounterConcurrently(client!, writers: 4, rounds: 8)
        let final = try await client.get(.configmaps, namespace: "default", name: "counter")
        XCTAssertEqual(final[path: "data", "n"], "32")
        XCTAssertGreaterThan(conflicts, 0)
    }
}

/// The same tests on etcd (each restated: XCTest on Linux does not discover inherited tests).
final class EtcdAPIServerTests: APIServerTests {
    override class var backend: Backend { .etcd }
    override func testDiscoveryAndVersion() async throws { try await super.testDiscoveryAndVersion() }
    override func testBindingFromTheCallersCopy() async throws { try await super.testBindingFromTheCallersCopy() }
    override func testCreateChecksTheNamespaceInItsOwnWrite() async throws { try await super.testCreateChecksTheNamespaceInItsOwnWrite() }
    override func testEventsExpireAfterTheEventTTL() async throws { try await super.testEventsExpireAfterTheEventTTL() }
    func testNodePortsComeFromTheirRangeOnEtcd() async throws { try await testNodePortsComeFromTheirRange() }
    override func testOpenAPIV3DeclaresServerSideFieldValidation() async throws { try await super.testOpenAPIV3DeclaresServerSideFieldValidation() }
    override func testCreateDefaultsAndGenerateName() async throws { try await super.testCreateDefaultsAndGenerateName() }
    override func testValidationReturns422NamingTheField() async throws { try await super.testValidationReturns422NamingTheField() }
    override func testStalePutConflictsAndMergePatch() async throws { try await super.testStalePutConflictsAndMergePatch() }
    override func testStrategicMergeMergesContainersByName() async throws { try await super.testStrategicMergeMergesContainersByName() }
    override func testLabelAndFieldSelectors() async throws { try await super.testLabelAndFieldSelectors() }
    override func testFinalizersDeferDeletion() async throws { try await super.testFinalizersDeferDeletion() }
    override func testStatusAndScaleSubresources() async throws { try await super.testStatusAndScaleSubresources() }
    override func testWatchStreamsEventsAndResumes() async throws { try await super.testWatchStreamsEventsAndResumes() }
    override func testWatchResumesAcrossServerRestart() async throws { try await super.testWatchResumesAcrossServerRestart() }
    override func testBearerTokenAuthAndRoles() async throws { try await super.testBearerTokenAuthAndRoles() }
    override func testConcurrentHTTPWritersGet409AndLoseNothing() async throws { try await super.testConcurrentHTTPWritersGet409AndLoseNothing() }
}

/// A real store that counts the reads of single objects made through it.
final class ReadCountingStore: Store, @unchecked Sendable {
    let inner: any Store
    private let lock = NSLock()
    private var count = 0  // Guarded by: lock
    var gets: Int { lock.withLock { count } }
    init(_ inner: any Store) { self.inner = inner }
    func get(_ key: ObjectKey) async throws -> StoredObject? { lock.withLock { count += 1 }; return try await inner.get(key) }
    func list(resource: String, namespace: String?) async throws -> (items: [StoredObject], revision: Int64) { try await inner.list(resource: resource, namespace: namespace) }
    func create(_ key: ObjectKey, value: Data) async throws -> StoredObject { try await inner.create(key, value: value) }
    func create(_ key: ObjectKey, value: Data, ttl: Duration) async throws -> StoredObject { try await inner.create(key, value: value, ttl: ttl) }
    func create(_ key: ObjectKey, value: Data, ttl: Duration?, parent: ObjectKey) async throws -> StoredObject {
        try await inner.create(key, value: value, ttl: ttl, parent: parent)
    }
    func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?) async throws -> StoredObject {
        try await inner.update(key, value: value, expectedRevision: expectedRevision)
    }
    func update(_ key: ObjectKey, value: Data, expectedRevision: Int64?, ttl: Duration) async throws -> StoredObject {
        try await inner.update(key, value: value, expectedRevision: expectedRevision, ttl: ttl)
    }
    func delete(_ key: ObjectKey, expectedRevision: Int64?) async throws -> StoredObject { try await inner.delete(key, expectedRevision: expectedRevision) }
    func watch(resource: String, namespace: String?, fromRevision: Int64) async throws -> AsyncThrowingStream<StoreEvent, Error> {
        try await inner.watch(resource: resource, namespace: namespace, fromRevision: fromRevision)
    }
    func currentRevision() async throws -> Int64 { try await inner.currentRevision() }
    func compactedRevision() async throws -> Int64 { try await inner.compactedRevision() }
    func compact(toRevision revision: Int64) async throws { try await inner.compact(toRevision: revision) }
    func close() {}
}
