import type { EdgeStatus } from '../contracts/edge';
import { etag } from './etag';

/*
 * The poll reply of a standard-mode Edge agent (reference 1.8) as bytes on the wire: Go's JSON
 * encoder output of `endpointEdgeStatusInspectResponse` (fields in declaration order, lowercase
 * top-level keys, Go names inside) followed by a newline, hashed into the ETag.
 */

/** A poll reply body (the contract's `EdgeStatus`). */
export type EdgeStatusBody = EdgeStatus;

/** A serialised reply: the exact bytes to send and their ETag. */
export interface EncodedEdgeStatus {
  json: string;
  etag: string;
}

/**
 * Serialises a poll reply exactly as Portainer does (key order fixed here, not by the caller's
 * object; trailing newline) and computes its ETag over those bytes.
 */
export function encodeEdgeStatus(b: EdgeStatusBody): EncodedEdgeStatus {
  const ordered = {
    status: b.status,
    port: b.port,
    schedules: b.schedules.map((s) => ({ Id: s.Id, CollectLogs: s.CollectLogs, CronExpression: s.CronExpression, Script: s.Script, Version: s.Version })),
    checkin: b.checkin,
    credentials: b.credentials,
    stacks: b.stacks.map((s) => ({ ID: s.ID, Version: s.Version })),
  };
  const json = `${goJson(ordered)}\n`;
  return { json, etag: etag(json) };
}

/**
 * JSON.stringify with Go's `encoding/json` HTML escaping (`<`, `>`, `&`, U+2028, U+2029), so the
 * bytes, and therefore the ETag, match what a Go server would send for the same value.
 */
export function goJson(v: unknown): string {
  return JSON.stringify(v).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** `Portainer-Agent-Platform` values. */
export const AgentPlatform = { Docker: 1, Kubernetes: 2 } as const;

/**
 * The environment type an agent platform header means (1 → 4 Edge agent on Docker, 2 → 7 Edge
 * agent on Kubernetes), or undefined when the header is missing or invalid (Portainer: 400).
 */
export function edgeTypeOfPlatform(header: string | undefined): 4 | 7 | undefined {
  if (header === undefined || !/^\s*[+]?[0-9]+\s*$/.test(header)) return undefined;
  const n = Number(header.trim());
  return n === AgentPlatform.Docker ? 4 : n === AgentPlatform.Kubernetes ? 7 : undefined;
}
