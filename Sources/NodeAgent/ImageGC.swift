// Image garbage collection by disk usage, as kubelet does it: when the image
// file system (ImageFsInfo's mountpoint) is at least `high` percent used, the
// agent removes unused images, least recently used first, until usage would be
// down to `low` percent. An image is in use while any container the runtime
// holds (running or exited) names it; such an image, a pinned one, and one
// first seen less than `minimumAge` ago are never removed. "Last used" is the
// last time the agent saw a container use the image (or when it first saw the
// image, if never), kept in memory: a restarted agent starts over, which only
// makes it more careful (everything looks recently seen).
//
// The choice (`ImageGC.select`) is a pure function of the images, their
// sizes, what is in use and the file system's numbers; `collectImages` feeds
// it from the runtime (ListImages, ListContainers, ImageFsInfo) and statvfs.

import CRIAPI
import Foundation
import Glibc

public struct ImageGCPolicy: Sendable, Equatable {
    /// Usage (percent of the image file system) at which collection starts; 100: never.
    public var highThresholdPercent = 85
    /// Usage it frees down to.
    public var lowThresholdPercent = 80
    /// Images first seen more recently than this are kept.
    public var minimumAge: TimeInterval = 120
    public init() {}
    public init(high: Int, low: Int, minimumAge: TimeInterval) {
        highThresholdPercent = high; lowThresholdPercent = low; self.minimumAge = minimumAge
    }
}

enum ImageGC {
    struct Candidate: Equatable {
        var id: String
        var size: UInt64
        var pinned = false
        var firstSeen: Date
        var lastUsed: Date
    }

    /// What to remove, in order, and how many bytes that is meant to free.
    /// `capacity` and `available` are the image file system's, in bytes.
    static func select(_ images: [Candidate], inUse: Set<String>, capacity: UInt64, available: UInt64,
                       policy: ImageGCPolicy, now: Date) -> (bytesToFree: UInt64, remove: [Candidate]) {
        guard capacity > 0, policy.highThresholdPercent < 100 else { return (0, []) }
        let used = capacity - min(available, capacity)
        // Usage in percent, rounded down (as a percentage compared with the thresholds).
        let usage = Int(used * 100 / capacity)
        guard usage >= policy.highThresholdPercent else { return (0, []) }
        let target = capacity / 100 * UInt64(max(0, min(100, policy.lowThresholdPercent)))
        guard used > target else { return (0, []) }
        let toFree = used - target
        let eligible = images.filter {
            !inUse.contains($0.id) && !$0.pinned && now.timeIntervalSince($0.firstSeen) >= policy.minimumAge
        }.sorted { ($0.lastUsed, $0.firstSeen, $0.id) < ($1.lastUsed, $1.firstSeen, $1.id) }
        var freed: UInt64 = 0
        var chosen: [Candidate] = []
        for c in eligible where freed < toFree {
            chosen.append(c)
            freed += c.size
        }
        return (toFree, chosen)
    }
}

/// When the agent first saw each image and last saw it in use. Sync loop only.
final class ImageUseRecord: @unchecked Sendable {
    var firstSeen: [String: Date] = [:]
    var lastUsed: [String: Date] = [:]
}

extension NodeAgent {
    /// One collection pass; returns the ids of the images removed.
    @discardableResult
    /// `policy`: the thresholds to use (eviction frees all it can), else --image-gc-*.
    func collectImages(now: Date = Date(), policy: ImageGCPolicy? = nil) async throws -> [String] {
        let policy = policy ?? o.imageGC
        let fs = try await images.imageFsInfo(Runtime_V1_ImageFsInfoRequest())
        guard let mountpoint = fs.imageFilesystems.first?.fsID.mountpoint, !mountpoint.isEmpty else { return [] }
        guard let disk = EvictionObservation.fileSystem(at: mountpoint) else {
            log.info("image GC: statvfs \(mountpoint): \(String(cString: strerror(errno)))")
            return []
        }
        let list = try await images.listImages(Runtime_V1_ListImagesRequest()).images
        let inUse = try await imagesInUse(list)
        let record = imageUse
        var candidates: [ImageGC.Candidate] = []
        for i in list {
            let first = record.firstSeen[i.id] ?? now
            record.firstSeen[i.id] = first
            if inUse.contains(i.id) { record.lastUsed[i.id] = now }
            candidates.append(.init(id: i.id, size: i.size, pinned: i.pinned, firstSeen: first, lastUsed: record.lastUsed[i.id] ?? first))
        }
        // Forget images that are gone.
        let present = Set(list.map(\.id))
        record.firstSeen = record.firstSeen.filter { present.contains($0.key) }
        record.lastUsed = record.lastUsed.filter { present.contains($0.key) }
        let (toFree, chosen) = ImageGC.select(candidates, inUse: inUse, capacity: disk.capacity, available: disk.available,
                                              policy: policy, now: now)
        guard toFree > 0 else { return [] }
        var removed: [String] = []
        var freed: UInt64 = 0
        for c in chosen {
            var r = Runtime_V1_RemoveImageRequest()
            r.image.image = c.id
            do {
                _ = try await images.removeImage(r)
                removed.append(c.id)
                freed += c.size
                record.firstSeen[c.id] = nil; record.lastUsed[c.id] = nil
            } catch {
                // In use after all (a container made since the listing): kept.
                log.info("image GC: removing \(c.id): \(error)")
            }
        }
        log.info("image GC: \(mountpoint) at or over \(policy.highThresholdPercent)% used; removed \(removed.count) images, \(freed) of the \(toFree) bytes to free")
        if freed < toFree { log.warning("image GC: wanted to free \(toFree) bytes, but freed \(freed) (the rest is in use or too new)") }
        return removed
    }

    /// The ids of the images in `list` that a container the runtime holds (in any state) uses.
    /// A container names its image by id or digest (imageRef, imageID) or by the reference it
    /// was created with (image.image); one not found in the list as it is (a short name) is
    /// resolved by the runtime (ImageStatus).
    func imagesInUse(_ list: [Runtime_V1_Image]) async throws -> Set<String> {
        let containers = try await runtime.listContainers(Runtime_V1_ListContainersRequest()).containers
        var inUse = Set<String>()
        for c in containers {
            for ref in Set([c.imageRef, c.imageID, c.image.image]) where !ref.isEmpty {
                if let i = list.first(where: { $0.id == ref || $0.repoTags.contains(ref) || $0.repoDigests.contains(ref) }) {
                    inUse.insert(i.id)
                } else {
                    var q = Runtime_V1_ImageStatusRequest(); q.image.image = ref
                    if let st = try? await images.imageStatus(q), st.hasImage { inUse.insert(st.image.id) }
                }
            }
        }
        return inUse
    }
}
