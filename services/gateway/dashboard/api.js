// The HTTP API of CONTRACT.md §6, with the Bearer token. Errors come back as
// {"error": {"code", "message"}}; they are thrown as ApiError so callers can tell 401 (ask for a
// token again) from 403 (this token's role may not do that) from everything else.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message)
    this.status = status
    this.code = code
  }
}

export class Api {
  /** `onUnauthorized` runs on any 401: the token was revoked or mistyped. */
  constructor(token, onUnauthorized = () => {}) {
    this.token = token
    this.onUnauthorized = onUnauthorized
  }

  get(path, query) {
    const search = query ? `?${new URLSearchParams(query)}` : ''
    return this.request('GET', `${path}${search}`)
  }

  /** POST without a body: acknowledge, approve, reject. */
  post(path) {
    return this.request('POST', path)
  }

  /** PUT with a JSON body: the tuning mode. */
  put(path, body) {
    return this.request('PUT', path, body)
  }

  /**
   * A GET answered in another format (`accept`, e.g. text/csv), as a Blob to save, with the file
   * name the server suggests in Content-Disposition, if any.
   */
  async blob(path, query, accept) {
    const response = await this.send('GET', `${path}?${new URLSearchParams(query)}`, { accept })
    const disposition = response.headers.get('content-disposition') ?? ''
    const fileName = /filename="([^"]+)"/.exec(disposition)?.[1]
    return { blob: await response.blob(), fileName }
  }

  async request(method, path, body) {
    const response = await this.send(
      method,
      path,
      body === undefined ? {} : { 'content-type': 'application/json' },
      body,
    )
    const text = await response.text()
    return text ? JSON.parse(text) : undefined
  }

  /** The response of an authorised request, or an ApiError from the contract's error body. */
  async send(method, path, headers, body) {
    let response
    try {
      response = await fetch(path, {
        method,
        headers: { ...headers, authorization: `Bearer ${this.token}` },
        cache: 'no-store',
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      })
    } catch (error) {
      throw new ApiError(0, 'network', `the server could not be reached (${error.message})`)
    }
    if (response.status === 401) {
      this.onUnauthorized()
      throw new ApiError(401, 'unauthorized', 'the token was not accepted')
    }
    if (!response.ok) {
      let error = {}
      try {
        error = (await response.json()).error ?? {}
      } catch {
        // Not the contract's error body (a proxy's page, say): the status says enough.
      }
      throw new ApiError(response.status, error.code ?? `http_${response.status}`, error.message ?? response.statusText)
    }
    return response
  }
}
