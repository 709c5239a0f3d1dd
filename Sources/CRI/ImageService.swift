// The CRI ImageService (runtime.v1) over the image store (Images). Owned by
// the image-store work; `CRIServer` registers it next to the RuntimeService.

import CRIAPI
import GRPCCore
import Images

/// Images the RuntimeService needs when it creates a container.
public protocol ImageResolver: Sendable {
    /// The image a CreateContainer request names (a reference or an image id),
    /// or nil when it is not in the store.
    func resolve(_ reference: String) async throws -> ResolvedImage?
}
