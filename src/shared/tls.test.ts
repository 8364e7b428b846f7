import { describe, expect, test } from 'bun:test'
import { controlUrlList, controlUrls, isCertificateError, tlsInit } from './tls.ts'

describe('controlUrls', () => {
  test.each([
    ['http://127.0.0.1:8667', 'http://127.0.0.1:8667', 'ws://127.0.0.1:8667', false],
    ['https://control.example:8667/', 'https://control.example:8667', 'wss://control.example:8667', true],
    ['wss://control.example', 'https://control.example', 'wss://control.example', true],
    ['ws://[::1]:8667', 'http://[::1]:8667', 'ws://[::1]:8667', false],
    ['https://example.net/lanrage//', 'https://example.net/lanrage', 'wss://example.net/lanrage', true],
  ])('%s', (url, http, ws, secure) => {
    expect(controlUrls(url)).toEqual({ http, ws, secure })
  })

  test.each(['ftp://x', 'control.example:8667', '', 'https://', 'file:///etc/passwd'])('%p is refused with one line', (url) => {
    expect(() => controlUrls(url)).toThrow(/control URL .*(not a URL|expected http:\/\/, https:\/\/, ws:\/\/ or wss:\/\/)/)
  })
})

describe('controlUrlList', () => {
  test('one URL, a comma-separated list (spaces and empty items ignored) or an array, in order', () => {
    expect(controlUrlList('http://a:8667')).toEqual(['http://a:8667'])
    expect(controlUrlList(' http://a:8667 , https://b:8667/,, ')).toEqual(['http://a:8667', 'https://b:8667/'])
    expect(controlUrlList(['wss://b', 'http://a'])).toEqual(['wss://b', 'http://a'])
  })
  test.each([
    ['', /no control URL given/],
    [' , ', /no control URL given/],
    ['http://a:8667,ftp://b', /control URL "ftp:\/\/b": expected http/],
    ['http://a:8667,http://a:8667/', /control URL "http:\/\/a:8667\/" is given twice/],
    ['ws://a:8667,http://a:8667', /is given twice/],
  ])('%p is refused with one line', (text, re) => {
    expect(() => controlUrlList(text)).toThrow(re)
  })
})

describe('isCertificateError', () => {
  test.each(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'CERT_HAS_EXPIRED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'])(
    '%s is a certificate refusal',
    (code) => expect(isCertificateError(Object.assign(new Error('x'), { code }))).toBe(true),
  )
  test.each(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', undefined])('%p is a network error (retried)', (code) => {
    expect(isCertificateError(Object.assign(new Error('x'), { code }))).toBe(false)
  })
  test('not an error at all', () => expect(isCertificateError(null)).toBe(false))
})

test('tlsInit: nothing without a CA, the `tls` option of fetch and WebSocket with one', () => {
  expect(tlsInit(undefined)).toEqual({})
  expect(tlsInit({})).toEqual({})
  expect(tlsInit({ ca: 'PEM' })).toEqual({ tls: { ca: 'PEM' } })
})
