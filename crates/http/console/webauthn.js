// Passkey ceremonies: the API speaks the JSON forms of WebAuthn Level 3,
// which browsers parse and produce themselves.

/** Whether this browser can make and use passkeys the console's way. */
export function passkeysSupported() {
  return typeof PublicKeyCredential !== 'undefined'
    && typeof PublicKeyCredential.parseRequestOptionsFromJSON === 'function';
}

/** Makes a passkey from the server's creation options; its JSON response. */
export async function createPasskey(publicKey) {
  const options = PublicKeyCredential.parseCreationOptionsFromJSON(publicKey);
  const credential = await navigator.credentials.create({ publicKey: options });
  return credential.toJSON();
}

/** Signs the server's challenge with a passkey; its JSON response. */
export async function usePasskey(publicKey) {
  const options = PublicKeyCredential.parseRequestOptionsFromJSON(publicKey);
  const credential = await navigator.credentials.get({ publicKey: options });
  return credential.toJSON();
}
