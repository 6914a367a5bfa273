/// Failures talking to ARI. Messages never contain credentials.
public enum ARIError: Error, CustomStringConvertible, Equatable {
    /// Asterisk answered with a status the call did not expect.
    case status(Int, String)
    case transport(String)
    case badResponse(String)

    public var description: String {
        switch self {
        case .status(let code, let message): "ARI answered \(code): \(message)"
        case .transport(let message): "ARI unreachable: \(message)"
        case .badResponse(let message): "ARI sent an unexpected answer: \(message)"
        }
    }

    public var statusCode: Int? {
        if case .status(let code, _) = self { return code }
        return nil
    }
}
