import Foundation

/// A PLC user as PLCAPI's `persons` table holds one: what authenticates a server call
/// (docs/contract.md §5).
public struct Person: Sendable, Equatable, Decodable {
    /// `person_id`.
    public let personID: Int
    /// `email`: the `Username` of password authentication.
    public let email: String
    /// `password`: a crypt(3) hash (`$6$`, `$5$`, `$y$`, `$1$`, ...).
    public let password: String?
    /// `roles`: `admin`, `pi`, `tech`, `user`.
    public let roles: [String]
    /// `site_ids`.
    public let siteIDs: [Int]
    /// `enabled`: a disabled person cannot authenticate.
    public let enabled: Bool

    enum CodingKeys: String, CodingKey {
        case personID = "person_id", email, password, roles, siteIDs = "site_ids", enabled
    }

    /// Creates a person.
    public init(personID: Int, email: String, password: String?, roles: [String], siteIDs: [Int], enabled: Bool) {
        self.personID = personID
        self.email = email
        self.password = password
        self.roles = roles
        self.siteIDs = siteIDs
        self.enabled = enabled
    }

    /// The caller this person is to the planner.
    public var caller: Caller { Caller(roles: roles, siteIDs: siteIDs) }

    /// Whether `password` is this person's: crypt(3) of it with the stored hash as its setting
    /// equals the stored hash (compared in constant time). A person without a hash, or with a
    /// hash libcrypt does not know, matches nothing.
    public func hasPassword(_ password: String) -> Bool {
        guard let stored = self.password, stored.count >= 3, !password.contains("\0") else { return false }
        guard let computed = Crypt.hash(password, setting: stored) else { return false }
        return Crypt.constantTimeEqual(Array(computed.utf8), Array(stored.utf8))
    }
}

/// Where the server's persons come from. The server uses ``JSONPersonStore``; the database
/// store (issue 20) supplies its own.
public protocol PersonSource: Sendable {
    /// The person whose `email` is `email` (case-insensitive, as PLCAPI's), or nil.
    func person(email: String) async throws(BootMediumError) -> Person?
}

/// The persons file of docs/contract.md §5: `{"persons": [...]}` with PLCAPI's field names.
/// Read again whenever the file changed, so an operator's edit takes effect without a restart.
/// Two persons with one email (case-insensitive) or one `person_id` make the whole file
/// `invalid-person-store`.
public final class JSONPersonStore: PersonSource, @unchecked Sendable {
    // @unchecked: the parsed persons are guarded by `lock`.
    /// The persons file.
    public let path: String
    private let lock = NSLock()
    private var loaded: (identity: FileIdentity, persons: [String: Person])?

    /// Opens the store at `path` (read when used).
    public init(path: String) { self.path = path }

    private struct Document: Decodable {
        var persons: [Person]
    }

    public func person(email: String) async throws(BootMediumError) -> Person? {
        try persons()[email.lowercased()]
    }

    /// Reads the file, or the persons parsed from it when it did not change.
    func persons() throws(BootMediumError) -> [String: Person] {
        let file = try InputFile.open(path, role: .personStore)
        lock.lock()
        if let loaded, loaded.identity == file.identity {
            defer { lock.unlock() }
            return loaded.persons
        }
        lock.unlock()
        let bytes = try file.readAll()
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(bytes))
        } catch {
            throw BootMediumError(
                .invalidPersonStore, "The persons file \(path) is not valid: \(error)", context: ["path": path])
        }
        var byEmail: [String: Person] = [:]
        var ids: Set<Int> = []
        for person in document.persons {
            let key = person.email.lowercased()
            guard byEmail[key] == nil, ids.insert(person.personID).inserted else {
                throw BootMediumError(
                    .invalidPersonStore,
                    "The persons file \(path) names person \(person.personID) or \(person.email.debugDescription) twice",
                    context: ["path": path])
            }
            byEmail[key] = person
        }
        lock.lock()
        loaded = (file.identity, byEmail)
        lock.unlock()
        return byEmail
    }
}
