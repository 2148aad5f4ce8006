// What the browser scripts share besides the browser: calls to the platform's API as a given
// person (to set a scene and to check what the pages did), and a readable assertion.

/** `call(token, method, path, body)` against `base`: the JSON answer, or an error naming it. */
export function caller(base) {
  return async (token, method, path, body) => {
    const answer = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = await answer.json().catch(() => null);
    if (!answer.ok) throw new Error(`${method} ${path} answered ${answer.status}: ${JSON.stringify(json)}`);
    return json;
  };
}

/** An access token of `email`'s, signed in through the API. */
export async function accessToken(base, email, password) {
  const answer = await fetch(`${base}/api/v1/auth/login`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ email, password }),
  });
  if (!answer.ok) throw new Error(`signing in as ${email} answered ${answer.status}`);
  return (await answer.json()).access_token;
}

/** Fails with `what`, what it was and what it should be, unless `actual` equals `wanted`. */
export function expect(what, actual, wanted) {
  if (JSON.stringify(actual) !== JSON.stringify(wanted)) {
    throw new Error(`${what}: ${JSON.stringify(actual)}, not ${JSON.stringify(wanted)}`);
  }
}
