// Package browser tests the storage browser (`durable serve --admin-addr`)
// end to end in headless Chromium, driven through the DevTools protocol.
// It is its own module so that the library does not depend on the
// browser driver. scripts/test.sh installs Debian's chromium when it is
// missing; without a browser the test skips and says why.
package browser
