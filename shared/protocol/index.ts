/**
 * Wire formats of Portainer's Edge Agent protocol shared by the server and the agent: poll reply
 * encoding and ETags, tunnel credential encryption, and the agent request signature.
 * @packageDocumentation
 */
export { fnv1a32, etag, parseIfNoneMatch, ifNoneMatchHits, MAX_IF_NONE_MATCH_TAGS } from './etag';
export { encryptCredentials, decryptCredentials, toRawStd, fromRawStd } from './credentials';
export {
  agentSignatureHeaders, signAgentRequest, verifyAgentRequest, generateAgentSigningKey, DEFAULT_AGENT_MESSAGE, type AgentSignature, type AgentSignatureHeaders,
} from './signature';
export {
  encodeEdgeStatus, edgeTypeOfPlatform, goJson, AgentPlatform,
  type EdgeStatusBody, type EncodedEdgeStatus,
} from './edge-status';
