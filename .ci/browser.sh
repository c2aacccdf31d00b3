# Source this before the tests (`. .ci/browser.sh`): installs Debian's
# chromium and chromium-driver when missing and sets XLREG_REQUIRE_BROWSER=1,
# so the status-page browser test (crates/xlreg-cli/tests/browser.rs)
# fails instead of skipping when the browser is unusable.
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium chromium-driver
fi
/usr/bin/chromium --version
/usr/bin/chromedriver --version
export XLREG_REQUIRE_BROWSER=1
