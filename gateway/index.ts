/**
 * The gateway: Capstan's public HTTPS API (Portainer-compatible) in front of the services.
 * Stateless; run any number of replicas.
 */
export { startGateway, buildGateway, type Gateway, type GatewayOptions } from './server';
export { default as capstanApp, ROUTE_AREAS } from './app';
