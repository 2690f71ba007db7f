import CCramfs
import Testing

@Test func linksTheCTarget() {
    #expect(ccramfs_version() == 1)
}
