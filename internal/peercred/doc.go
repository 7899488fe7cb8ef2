// Package peercred says who is at the other end of a unix socket: the
// credentials the kernel recorded for the peer when it connected (or, for
// a client, when the server called listen(2)), read with SO_PEERCRED.
// They cannot be forged by the peer, and they do not change when the
// peer later changes its own ids or passes the socket on.
//
// cryptfs uses them on its local sockets (the control socket, the home
// re-wrap socket) so that each end talks only to the user it expects.
package peercred
