// The portal in a real browser: Debian's Chromium driven by playwright-core. Started by
// run.sh with a live estd (ESTD_URL, ESTD_ADMIN_PASSWORD, ESTD_CA, OUT_DIR). Prints PASS/FAIL
// per check and "N passed, M failed"; screenshots of each page go to OUT_DIR.
import { chromium } from 'playwright-core';
import { execFileSync } from 'node:child_process';
import { mkdirSync, existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const base = process.env.ESTD_URL;
const outDir = process.env.OUT_DIR;
const ca = process.env.ESTD_CA;
const NOT_A_MEMBER = 'Your account may not use the Certificate provisioning portal: it must belong to the identity group configured by your administrator. Contact your administrator for support.';
const RULES = 'The certificate password does not follow the password rules: Includes at least one uppercase letter, one lowercase letter, and one number; Length: 8 to 15 characters';
mkdirSync(outDir, { recursive: true });

let passed = 0, failed = 0;
async function check(name, fn) {
  try {
    await fn();
    console.log(`PASS  ${name}`);
    passed++;
  } catch (e) {
    console.log(`FAIL  ${name} — ${String(e.message || e).split('\n')[0]}`);
    failed++;
  }
}
function expect(cond, what) { if (!cond) throw new Error(what); }
const sh = (cmd, args, cwd) => execFileSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] }).toString();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
// The dev CA is not in Chromium's store: TLS is checked with openssl/curl elsewhere.
const context = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
const shot = (name) => page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });

async function login(user, password) {
  await page.goto(`${base}/portal/`);
  await page.fill('#username', user);
  await page.fill('#password', password);
  await page.click('button[type=submit]');
}

// Downloads the zip the form answers with; returns the folder it was unpacked into.
async function generate(name) {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('button.primary')]);
  const zip = join(outDir, `${name}.zip`);
  await download.saveAs(zip);
  const dir = join(outDir, name);
  rmSync(dir, { recursive: true, force: true });
  sh('unzip', ['-o', '-q', zip, '-d', dir]);
  return dir;
}

await check('the portal sends a stranger to the log-in page', async () => {
  await page.goto(`${base}/portal/`);
  expect(page.url().endsWith('/portal/login'), page.url());
  await shot('login');
});

await check("a non-member's log-in is refused with the message", async () => {
  await login('outsider', 'Outsider-pw-1');
  const text = await page.textContent('[role=alert]');
  expect(text.trim() === NOT_A_MEMBER, text);
  await shot('login-not-a-member');
});

await check('a member logs in and lands on the single-certificate form', async () => {
  await login('joe', 'Joe-password-1');
  expect(page.url().endsWith('/portal/single'), page.url());
  expect(await page.inputValue('#common_name') === 'joe', 'CN prefilled');
  await shot('single');
});

await check('Account → Change Password', async () => {
  await page.click('details.account summary');
  await page.click('text=Change Password');
  expect(page.url().endsWith('/portal/password'), page.url());
  await page.fill('#current', 'Joe-password-1');
  await page.fill('#new', 'Joe-password-2');
  await page.fill('#repeat', 'Joe-password-2');
  await page.click('button.primary');
  expect((await page.textContent('[role=status]')).includes('Your password was changed.'), 'confirmation');
  await shot('password-changed');
});

await check('I want to → single certificate without CSR → the zip verifies with openssl', async () => {
  await page.click('details.iwant summary');
  await page.click('text=generate single certificate (no certificate signing request)');
  await page.fill('#san', '11:22:33:44:55:66');
  await page.selectOption('#template', 'eap-tls');
  await page.selectOption('#format', 'pem-chain');
  await page.fill('#description', 'POS terminal 7');
  await page.fill('#password', 'Secret_#42');
  const dir = await generate('single');
  for (const f of ['joe_11-22-33-44-55-66.cer', 'joe_11-22-33-44-55-66.key', 'issuing-ca.cer', 'root-ca.cer', 'eap-server.cer']) {
    expect(existsSync(join(dir, f)), `${f} in the zip`);
  }
  sh('openssl', ['verify', '-CAfile', 'root-ca.cer', '-untrusted', 'issuing-ca.cer', 'joe_11-22-33-44-55-66.cer'], dir);
  sh('openssl', ['pkcs8', '-in', 'joe_11-22-33-44-55-66.key', '-passin', 'pass:Secret_#42', '-out', 'plain.pem'], dir);
  const keyPub = sh('openssl', ['pkey', '-in', 'plain.pem', '-pubout'], dir);
  const certPub = sh('openssl', ['x509', '-in', 'joe_11-22-33-44-55-66.cer', '-noout', '-pubkey'], dir);
  expect(keyPub === certPub, 'the key belongs to the certificate');
  expect(sh('openssl', ['x509', '-in', 'joe_11-22-33-44-55-66.cer', '-noout', '-ext', 'subjectAltName'], dir).includes('URI:urn:dev:mac:112233445566'), 'MAC SAN');
});

await check('a bad MAC address shows "Invalid MAC address" next to the field', async () => {
  await page.goto(`${base}/portal/single`);
  await page.fill('#san', '11:22:33');
  await page.selectOption('#template', 'eap-tls');
  await page.fill('#password', 'Secret_#42');
  await page.click('button.primary');
  expect((await page.textContent('#san-error')).trim() === 'Invalid MAC address', 'message');
  expect(await page.getAttribute('#san', 'aria-invalid') === 'true', 'field marked');
  await shot('single-invalid-mac');
});

await check("a bad certificate password shows the rule's message", async () => {
  await page.goto(`${base}/portal/single`);
  await page.fill('#san', '11:22:33:44:55:66');
  await page.selectOption('#template', 'eap-tls');
  await page.fill('#password', 'secret');
  await page.click('button.primary');
  expect((await page.textContent('#password-error')).trim() === RULES, await page.textContent('#password-error'));
  await shot('single-bad-password');
});

await check('I want to → single certificate with CSR → the zip has no key and verifies', async () => {
  const work = join(outDir, 'csr-input');
  mkdirSync(work, { recursive: true });
  sh('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', 'device.key',
                 '-subj', '/CN=joe', '-addext', 'subjectAltName=DNS:00:11:22:33:44:55', '-out', 'device.csr'], work);
  await page.click('details.iwant summary');
  await page.click('text=generate single certificate (with certificate signing request)');
  await page.fill('#csr_pem', readFileSync(join(work, 'device.csr'), 'utf8'));
  await page.selectOption('#template', 'eap-tls');
  await page.selectOption('#format', 'pkcs12');
  await page.fill('#password', 'Secret_#42');
  await shot('csr');
  const dir = await generate('csr');
  expect(existsSync(join(dir, 'joe_00-11-22-33-44-55.cer')), 'certificate');
  expect(!existsSync(join(dir, 'joe_00-11-22-33-44-55.p12')) && !existsSync(join(dir, 'joe_00-11-22-33-44-55.key')), 'no key');
  sh('openssl', ['verify', '-CAfile', 'root-ca.cer', '-untrusted', 'issuing-ca.cer', 'joe_00-11-22-33-44-55.cer'], dir);
  const certPub = sh('openssl', ['x509', '-in', 'joe_00-11-22-33-44-55.cer', '-noout', '-pubkey'], dir);
  expect(certPub === sh('openssl', ['pkey', '-in', join(work, 'device.key'), '-pubout']), "the CSR's key");
});

await check('I want to → generate bulk certificates → Download CSV template here', async () => {
  await page.click('details.iwant summary');
  await page.click('text=generate bulk certificates');
  expect(page.url().endsWith('/portal/bulk'), page.url());
  await shot('bulk');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Download CSV template here')]);
  const path = join(outDir, 'bulk-template.csv');
  await download.saveAs(path);
  expect(readFileSync(path, 'utf8') === 'CN,SAN\r\n', 'the template');
});

const ROWS = 60;
await check(`bulk: upload ${ROWS} rows, the progress bar reaches 100 % without a reload`, async () => {
  let csv = 'CN,SAN\r\n';
  for (let i = 0; i < ROWS; i++) csv += `joe,00-11-22-33-44-${i.toString(16).padStart(2, '0')}\r\n`;
  const path = join(outDir, 'devices.csv');
  writeFileSync(path, csv);
  await page.setInputFiles('#csv', path);
  await page.selectOption('#template', 'eap-tls');
  await page.selectOption('#format', 'pkcs12');
  await page.fill('#description', 'store 12');
  await page.fill('#password', 'Secret_#42');
  await page.click('button.primary');
  expect(page.url().endsWith('/portal/bulk/status'), page.url());
  // the bar moves while the page stays (a marker set on this document survives until the reload)
  await page.evaluate(() => { window.__same = true; });
  let sawProgress = false;
  for (let i = 0; i < 300; i++) {
    const alive = await page.evaluate(() => window.__same === true).catch(() => false);
    if (!alive) break; // reloaded: the job ended
    const v = await page.evaluate(() => document.getElementById('bar').value).catch(() => 0);
    if (v > 0 && v < 100) sawProgress = true;
    if (i === 3) await shot('bulk-status-running');
    await page.waitForTimeout(100);
  }
  await page.waitForSelector('#summary');
  expect(await page.evaluate(() => document.getElementById('bar').value) === 100, 'bar at 100');
  expect((await page.textContent('#progress-text')).includes(`${ROWS} of ${ROWS} (100 %)`), await page.textContent('#progress-text'));
  expect((await page.textContent('#summary')).includes(`Issued: ${ROWS}`), await page.textContent('#summary'));
  console.log(`      (saw the bar between 0 and 100 %: ${sawProgress})`);
  await shot('bulk-status-done');
});

await check('bulk: log out and back in lands on the status page', async () => {
  await page.click('details.account summary');
  await page.click('text=Log out');
  await login('joe', 'Joe-password-2');
  expect(page.url().endsWith('/portal/bulk/status'), page.url());
});

await check('bulk: the zip holds every certificate and key; openssl checks one', async () => {
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const zip = join(outDir, 'bulk.zip');
  await download.saveAs(zip);
  const dir = join(outDir, 'bulk');
  rmSync(dir, { recursive: true, force: true });
  sh('unzip', ['-o', '-q', zip, '-d', dir]);
  const names = readdirSync(dir);
  expect(names.filter((n) => n.endsWith('.p12')).length === ROWS, `${ROWS} .p12`);
  expect(names.filter((n) => n.endsWith('.cer')).length === ROWS + 3, 'certificates, chain and EAP file');
  sh('openssl', ['verify', '-CAfile', 'root-ca.cer', '-untrusted', 'issuing-ca.cer', 'joe_00-11-22-33-44-2A.cer'], dir);
  sh('openssl', ['pkcs12', '-in', 'joe_00-11-22-33-44-2A.p12', '-info', '-noout', '-passin', 'pass:Secret_#42'], dir);
});

await check('bulk: confirming the download frees the user for a new request', async () => {
  await page.goto(`${base}/portal/bulk/status`);
  await page.click('#confirm');
  expect(page.url().endsWith('/portal/bulk'), page.url());
  expect(await page.isVisible('#csv'), 'the upload form again');
});

await check('a form POST without its CSRF token is refused (403) and issues nothing', async () => {
  const r = await page.request.post(`${base}/portal/single`, {
    form: { common_name: 'joe', san: '11:22:33:44:55:66', template: 'eap-tls', format: 'pem', password: 'Secret_#42' },
  });
  expect(r.status() === 403, `status ${r.status()}`);
  expect((await r.text()).includes('This form has expired'), 'message');
});

await check('test certificate: a name with a space fails beside the field, with the request id', async () => {
  await page.click('details.iwant summary');
  await page.click('text=request a test certificate (MDM connector)');
  expect(page.url().endsWith('/portal/test'), page.url());
  await page.selectOption('#template', 'mdm');
  await page.fill('#cert_name', 'Test Cert');
  await page.fill('#user_name', 'jdoe');
  await page.fill('#domain', 'corp.example.com');
  await page.fill('#email', 'jdoe@example.com');
  await page.click('button.primary');
  expect((await page.textContent('#cert_name-error')) === 'The certificate name cannot contain spaces', 'message');
  expect((await page.getAttribute('#cert_name', 'aria-invalid')) === 'true', 'aria-invalid');
  expect(/Request ID: [0-9a-f]{16}/.test(await page.textContent('p.request-id')), 'request id');
});

await check('test certificate: PASS with a certificate openssl reads (UPN and Email)', async () => {
  await page.fill('#cert_name', 'TestCert');
  await page.click('button.primary');
  expect((await page.textContent('#test-result')).startsWith('PASS'), 'PASS');
  await shot('test-certificate');
  const pem = join(outDir, 'test-certificate.pem');
  writeFileSync(pem, await page.inputValue('#certificate_pem'));
  const san = sh('openssl', ['x509', '-in', pem, '-noout', '-ext', 'subjectAltName']);
  expect(san.includes('email:jdoe@example.com') && san.includes('jdoe@corp.example.com'), san);
  const key = join(outDir, 'test-certificate.key');
  writeFileSync(key, await page.inputValue('#private_key_pem'));
  expect(sh('openssl', ['x509', '-in', pem, '-noout', '-pubkey']) === sh('openssl', ['pkey', '-in', key, '-pubout']), 'key matches');
});

await check('requests page: the failed test is listed with its reason', async () => {
  await page.click('details.iwant summary');
  await page.click('text=see my recent requests');
  await page.fill('#since', '10m');
  await page.check('input[name=failed]');
  await page.click('button.primary');
  const table = await page.textContent('#requests');
  expect(table.includes('The certificate name cannot contain spaces') && table.includes('test-certificate'), table.slice(0, 200));
  await shot('requests');
});

await check('certificates page: search, then revoke one; the row says revoked with the reason', async () => {
  await page.click('details.iwant summary');
  await page.click('text=see and revoke my certificates');
  await page.selectOption('#status', 'valid');
  await page.click('button.primary');
  const row = page.locator('#certificates tbody tr').first();
  const serial = await row.getAttribute('data-serial');
  expect(serial && /^[0-9a-f]+$/.test(serial), `a serial (${serial})`);
  await row.locator('select[name=reason]').selectOption('keyCompromise');
  await row.locator('button', { hasText: 'Revoke' }).click();
  const banner = await page.textContent('#revoked-banner');
  expect(banner.includes(`Certificate ${serial}`) && banner.includes('keyCompromise'), banner);
  const status = await page.textContent(`tr[data-serial="${serial}"] td.status`);
  expect(status.includes('revoked (keyCompromise)'), status);
  await shot('certificates');
});

await check('the form is usable on a phone (375 px)', async () => {
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(`${base}/portal/single`);
  const width = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(width <= 375, `no horizontal scrolling (${width} px)`);
  await shot('single-phone');
  for (const path of ['/portal/test', '/portal/requests?since=10m', '/portal/certificates']) {
    await page.goto(`${base}${path}`);
    const w = await page.evaluate(() => document.documentElement.scrollWidth);
    expect(w <= 375, `${path}: no horizontal scrolling (${w} px)`);
  }
  await shot('requests-phone');
});

await check('log out ends the session', async () => {
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.click('details.account summary');
  await page.click('text=Log out');
  await page.goto(`${base}/portal/single`);
  expect(page.url().endsWith('/portal/login'), page.url());
});

await check('an administrator issues a SCEP challenge (shown once) and withdraws it', async () => {
  await login('admin', process.env.ESTD_ADMIN_PASSWORD);
  await page.click('details.iwant summary');
  await page.click('text=issue SCEP challenges');
  expect(page.url().endsWith('/portal/scep'), page.url());
  await page.selectOption('#template', 'mdm');
  await page.fill('#cn', 'phone-1');
  await page.fill('#san', 'email:phone-1@example.com');
  await page.fill('#expires', '2h');
  await page.click('button.primary');
  const secret = (await page.textContent('#challenge-secret')).trim();
  expect(/^[0-9a-f]{32}$/.test(secret), `a 32-character secret (${secret})`);
  const row = page.locator('#challenges tbody tr').first();
  const text = await row.textContent();
  expect(text.includes('phone-1') && text.includes('phone-1@example.com') && text.includes('admin'), text);
  await shot('scep-challenges');
  // shown once: not on the page again
  await page.goto(`${base}/portal/scep`);
  expect(!(await page.content()).includes(secret), 'the secret is not shown again');
  await page.setViewportSize({ width: 375, height: 740 });
  const w = await page.evaluate(() => document.documentElement.scrollWidth);
  expect(w <= 375, `no horizontal scrolling (${w} px)`);
  await page.setViewportSize({ width: 1280, height: 900 });
  await page.locator('#challenges tbody tr').first().locator('button', { hasText: 'Withdraw' }).click();
  expect((await page.textContent('#no-challenges')).includes('No open challenges'), 'withdrawn');
  await page.click('details.account summary');
  await page.click('text=Log out');
});

await browser.close();
console.log(`\n${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
