/// The version of bootmedium.
public enum BootMediumVersion {
    /// `bootmedium --version` prints this.
    public static let string = "0.1.0"
}
